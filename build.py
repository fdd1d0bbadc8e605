#!/usr/bin/env python3
"""Builds dist/dream_renders-<version>.zip and the dream-renders wheel
(dist/dream_renders-<version>-py3-none-any.whl, also inside the zip for
Install Dream Server). The zip is the add-on folder plus
dream_core's standard-library-only packages, each copied verbatim as a
subpackage of the add-on: ``wire`` (the protocol, client and spawning: one
source of truth for how the add-on and the server talk) and ``shot`` (the
settings, frame plans, provenance, the shot planner and atomic writes: one
source of truth for what a run decides), installable as an extension
(Blender 4.2+) or a legacy add-on (3.4+). tests/test_bundled.py checks that
they import nothing beyond the standard library."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.abspath(__file__))
ADDON = os.path.join(ROOT, "blender_addon")
PACKAGE = "dream_renders"
BUNDLED = ("wire", "shot")  # dream_core's standard-library-only packages, the add-on's subpackages of those names


def version() -> str:
    with open(os.path.join(ADDON, "blender_manifest.toml"), encoding="utf-8") as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def check_no_heavy_imports(source: str, path: str) -> None:
    """The add-on must run in Blender's Python, which may lack numpy."""
    for banned in ("numpy", "torch", "cv2", "OpenEXR"):
        if re.search(rf"^\s*(import|from)\s+{banned}\b", source, re.M):
            raise SystemExit(f"build: {path} imports {banned}; the add-on must stay standard-library only")


def _sources(folder: str):
    """(path relative to ``folder``, text) of every file to ship, in a stable order."""
    for where, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                path = os.path.join(where, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, folder), f.read()


def build_wheel(out_dir: str) -> str:
    """The dream-renders wheel (``pip install`` it for ``python -m dream_core serve``), built by pip from
    pyproject.toml with the setuptools already installed (no download)."""
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                               "--quiet", "--wheel-dir", tmp, ROOT], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"build: pip could not build the wheel:\n{done.stdout}{done.stderr}")
        (name,) = os.listdir(tmp)
        shutil.move(os.path.join(tmp, name), os.path.join(out_dir, name))
    return os.path.join(out_dir, name)


def build(out_dir: str) -> str:
    """The add-on zip, with the wheel inside (Install Dream Server installs it) and beside it in ``out_dir``."""
    target = os.path.join(out_dir, f"{PACKAGE}-{version()}.zip")
    wheel = build_wheel(out_dir)
    tmp = target + ".partial"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(wheel, f"{PACKAGE}/wheels/{os.path.basename(wheel)}")
        for rel, source in _sources(ADDON):
            if rel.endswith(".py"):
                check_no_heavy_imports(source, rel)
            zf.writestr(f"{PACKAGE}/{rel}", source)
        for name in BUNDLED:
            for rel, source in _sources(os.path.join(ROOT, "dream_core", name)):
                zf.writestr(f"{PACKAGE}/{name}/{rel}", source)  # verbatim: their imports are relative
    os.replace(tmp, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.path.join(ROOT, "dist"), help="output folder (default dist/)")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
