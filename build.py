#!/usr/bin/env python3
"""Builds dist/dream_renders-<version>.zip: the add-on folder plus the
stdlib-only protocol and client from dream_core (one source of truth),
installable as an extension (Blender 4.2+) or a legacy add-on (3.4+)."""
from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile

ROOT = os.path.dirname(os.path.abspath(__file__))
ADDON = os.path.join(ROOT, "blender_addon")
PACKAGE = "dream_renders"
BUNDLED = {"dream_core/protocol.py": "dream_protocol.py", "dream_core/client.py": "dream_client.py",
           "dream_core/spawn.py": "dream_spawn.py", "dream_core/atomic.py": "dream_atomic.py"}


def version() -> str:
    with open(os.path.join(ADDON, "blender_manifest.toml"), encoding="utf-8") as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def check_stdlib_only(source: str, path: str) -> None:
    """The bundle must run in Blender's Python, which may lack numpy."""
    for banned in ("numpy", "torch", "cv2", "OpenEXR"):
        if re.search(rf"^\s*(import|from)\s+{banned}\b", source, re.M):
            raise SystemExit(f"build: {path} imports {banned}; the add-on must stay standard-library only")


def build(out_dir: str) -> str:
    target = os.path.join(out_dir, f"{PACKAGE}-{version()}.zip")
    os.makedirs(out_dir, exist_ok=True)
    tmp = target + ".partial"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, dirs, files in os.walk(ADDON):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ADDON)
                with open(path, encoding="utf-8") as f:
                    source = f.read()
                if name.endswith(".py"):
                    check_stdlib_only(source, rel)
                zf.writestr(f"{PACKAGE}/{rel}", source)
        for src, dst in BUNDLED.items():
            with open(os.path.join(ROOT, src), encoding="utf-8") as f:
                source = f.read()
            check_stdlib_only(source, src)
            zf.writestr(f"{PACKAGE}/{dst}", f"# Bundled from {src} by build.py; edit that file, not this one.\n"
                        + source)
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
