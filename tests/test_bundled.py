"""dream_core's bundled packages, ``wire`` (how the add-on and the server
talk) and ``shot`` (what a run decides from), are copied verbatim into the
add-on, which runs in Blender's own Python (no NumPy in Debian's Blender
3.4): everything in them must import from the standard library, from
their own package or from each other, nothing else."""
import ast
import os
import sys
import zipfile

import pytest
from conftest import ROOT, bundled_packages

BUNDLED = bundled_packages()


def imports_outside_stdlib(path: str) -> list[str]:
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from . import x: its own package
                continue
            if node.level == 2 and (node.module or "").split(".")[0] in BUNDLED:
                continue  # from ..shot import x: a package bundled beside it
            names = [("." * node.level) + (node.module or "")]
        else:
            continue
        bad += [n for n in names if n.startswith(".") or n.split(".")[0] not in sys.stdlib_module_names]
    return bad


def test_the_bundled_packages_import_only_the_standard_library():
    files = {name: [f for f in os.listdir(os.path.join(ROOT, "dream_core", name)) if f.endswith(".py")]
             for name in BUNDLED}
    assert {"protocol.py", "client.py", "spawn.py"} <= set(files["wire"])
    assert {"settings.py", "frame_plans.py", "provenance.py", "planner.py", "atomic.py"} <= set(files["shot"])
    offending = {f"{name}/{f}": imports_outside_stdlib(os.path.join(ROOT, "dream_core", name, f))
                 for name, names in files.items() for f in names}
    assert not any(offending.values()), offending


def test_the_checker_catches_a_third_party_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import json\nfrom . import protocol\nfrom ..shot.planner import Walk\nimport numpy as np\n"
                      "from ..engine import x\nfrom .. import config\n")
    assert imports_outside_stdlib(str(sneaky)) == ["numpy", "..engine", ".."]


@pytest.mark.slow
def test_the_zip_carries_the_bundled_packages_verbatim(addon_zip):
    with zipfile.ZipFile(addon_zip) as zf:
        for package in BUNDLED:
            folder = os.path.join(ROOT, "dream_core", package)
            for name in os.listdir(folder):
                if name.endswith(".py"):
                    with open(os.path.join(folder, name), encoding="utf-8") as f:
                        assert zf.read(f"dream_renders/{package}/{name}").decode() == f.read()
