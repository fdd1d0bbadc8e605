"""dream_core.wire is bundled verbatim into the add-on, which runs in
Blender's own Python (no NumPy in Debian's Blender 3.4): everything in it
must import from the standard library or from wire itself, nothing else."""
import ast
import os
import sys
import zipfile

from conftest import ROOT

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


def test_the_zip_carries_wire_verbatim(tmp_path):
    import subprocess

    built = subprocess.run([sys.executable, os.path.join(ROOT, "build.py"), "--out", str(tmp_path)],
                           capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(built) as zf:
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
