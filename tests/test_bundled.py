"""dream_core.wire is bundled verbatim into the add-on, which runs in
Blender's own Python (no NumPy in Debian's Blender 3.4): everything in it
must import from the standard library or from wire itself, nothing else."""
import ast
import os
import sys
import zipfile

import hypothesis
import pytest
from conftest import ROOT
from hypothesis import strategies as st

WIRE = os.path.join(ROOT, "dream_core", "wire")


def imports_outside_stdlib(path: str) -> list[str]:
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from . import x: wire itself
                continue
            names = [("." * node.level) + (node.module or "")]
        else:
            continue
        bad += [n for n in names if n.startswith(".") or n.split(".")[0] not in sys.stdlib_module_names]
    return bad


def test_wire_imports_only_the_standard_library():
    files = [f for f in os.listdir(WIRE) if f.endswith(".py")]
    assert {"protocol.py", "client.py", "spawn.py", "atomic.py", "plans.py"} <= set(files)
    offending = {f: imports_outside_stdlib(os.path.join(WIRE, f)) for f in files}
    assert not any(offending.values()), offending


def test_the_checker_catches_a_third_party_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import json\nfrom . import protocol\nimport numpy as np\nfrom ..engine import x\n")
    assert imports_outside_stdlib(str(sneaky)) == ["numpy", "..engine"]


@pytest.mark.slow
def test_the_zip_carries_wire_verbatim(addon_zip):
    with zipfile.ZipFile(addon_zip) as zf:
        for name in os.listdir(WIRE):
            if name.endswith(".py"):
                with open(os.path.join(WIRE, name), encoding="utf-8") as f:
                    assert zf.read(f"dream_renders/wire/{name}").decode() == f.read()


def test_atomic_writes_follow_the_umask(tmp_path):
    """Dreamed frames must be readable by other users and farm machines, as
    any file the user writes: mkstemp alone would leave them 0600."""
    from dream_core.wire.atomic import write_atomically

    old = os.umask(0o022)
    try:
        write_atomically(str(tmp_path / "shared.png"), b"frame")
        os.umask(0o027)
        write_atomically(str(tmp_path / "group.png"), b"frame")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.png").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "group.png").stat().st_mode & 0o777 == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file left


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    """A kill -9 mid-write leaves a hidden temporary; the next run in that
    folder removes it, but never one a writer beside it (a chunk running
    side by side, here or on another host sharing the folder) still writes."""
    import subprocess
    import time

    from dream_core.wire import atomic

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = atomic.owned_prefix().split("@")[1].rstrip(".")
    leftovers = {
        f".dream-{dead_pid}@{host}.frame_00001.exr": True,  # this host, writer gone
        f".dream-{dead_pid}@{host}.x1y2.partial": True,
        f".dream-{os.getppid()}@{host}.frame_00002.exr": False,  # this host, writer alive
        f".dream-{dead_pid}@another-host.frame_00003.exr": False,  # another host, fresh
        f".dream-{dead_pid}@old-host.frame_00004.exr": True,  # another host, a day old
        ".dream-notes.txt": False,  # not our pattern
        "frame_00005.png": False,
    }
    for name in leftovers:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".dream-{dead_pid}@{host}.render_ab12").mkdir()  # a render job's folder
    (tmp_path / f".dream-{dead_pid}@{host}.render_ab12" / "frame.exr").write_bytes(b"x")
    day_old = time.time() - atomic.FOREIGN_STALE_SECONDS - 60
    os.utime(tmp_path / f".dream-{dead_pid}@old-host.frame_00004.exr", (day_old, day_old))

    atomic.write_atomically(str(tmp_path / "frame_00006.png"), b"dream")
    left = set(os.listdir(tmp_path))
    assert left == {n for n, stale in leftovers.items() if not stale} | {"frame_00006.png"}
    (tmp_path / f".dream-{dead_pid}@{host}.late.partial").write_bytes(b"x")
    atomic.write_atomically(str(tmp_path / "frame_00007.png"), b"dream")  # once a folder, not on every write
    assert f".dream-{dead_pid}@{host}.late.partial" in os.listdir(tmp_path)
    assert atomic.remove_stale(str(tmp_path)) == [f".dream-{dead_pid}@{host}.late.partial"]


@hypothesis.given(st.text(max_size=300))
def test_a_name_in_a_path_is_one_safe_file_name_of_its_own(name):
    """Scene and strip names become file names: whatever the user typed
    (separators, ``..``, any script, 255 bytes in Blender 5), the result is
    one file-name part that stays in its folder, and no two names share it."""
    from dream_core.wire.plans import NAME_BYTES, name_in_path

    part = name_in_path(name)
    assert part and os.sep not in part and "/" not in part and "\0" not in part
    assert not part.startswith(".") and not part.endswith(".")
    assert len(part.encode("utf-8", "surrogatepass")) <= NAME_BYTES + 9
    assert os.path.dirname(os.path.normpath(os.path.join("root", part))) == "root"
    if part == name:
        return
    for other in (part, part.rsplit("_", 1)[0], name[:-1], name + "x"):  # what it could be confused with
        assert other == name or name_in_path(other) != part


def test_names_in_paths_keep_what_is_safe_and_mark_what_is_not():
    from dream_core.wire.plans import name_in_path

    assert [name_in_path(n) for n in ("Scene", "Scene.001", "ショット", "Shot-2_b")] == \
        ["Scene", "Scene.001", "ショット", "Shot-2_b"]
    assert name_in_path("a/b") != name_in_path("a_b") == "a_b"
    assert name_in_path("../../x").startswith("_._.._x_")
    assert name_in_path("x" * 300) != name_in_path("x" * 299)
