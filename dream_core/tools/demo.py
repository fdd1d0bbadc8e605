"""The README's first command: the whole product, offline, on this machine.

Builds a small animated scene with bpy, renders it with Cycles, dreams every
frame through the Blender add-on and a dream server running ``lite0``, and
leaves a .blend whose sequencer holds the dreamed strip, the frames, an MP4
of the sequencer and a side-by-side GIF (render | dream)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np

from ..io import read_image
from ..wire.protocol import write_token
from ..wire.spawn import spawn_server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout


def _side_by_side_gif(renders: str, dreams: str, path: str) -> None:
    from PIL import Image

    pictures = []
    for name in sorted(os.listdir(dreams)):
        if not name.endswith(".png"):
            continue
        shown = read_image(os.path.join(renders, name)).pixels[..., :3]  # as Blender wrote it
        dream = read_image(os.path.join(dreams, name)).pixels[..., :3]
        both = np.concatenate([shown, dream], axis=1)
        pictures.append(Image.fromarray((both * 255 + 0.5).astype(np.uint8)))
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=120, loop=0)


def run_demo(out_dir: str = "demo_output", frames: int = 16) -> int:
    out_dir = os.path.abspath(out_dir)
    script = _check_ready()
    _clear(out_dir)
    built = subprocess.run([sys.executable, os.path.join(ROOT, "build.py"), "--out", os.path.join(out_dir, "dist")],
                           capture_output=True, text=True, check=True).stdout.strip()
    started = time.monotonic()
    print("demo: starting the dream server (lite0, offline) ...", file=sys.stderr)
    server = spawn_server(sys.executable)
    print(f"demo: rendering {frames} frames with Cycles and dreaming them through the add-on ...", file=sys.stderr)
    try:
        result = subprocess.run([sys.executable, script, out_dir, built, str(frames)], text=True,
                                env=_blender_env(out_dir, server), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    finally:
        server.stop()
    progress = [line for line in result.stdout.splitlines() if line.startswith(("Dream Renders", "demo:"))]
    print("\n".join(progress), file=sys.stderr)
    if result.returncode != 0 or "DEMO OK" not in result.stdout:
        print(result.stdout[-4000:], file=sys.stderr)
        raise ValueError("the Blender part of the demo failed (its output is above)")
    gif = os.path.join(out_dir, "dream_preview.gif")
    _side_by_side_gif(os.path.join(out_dir, "renders_shown"), os.path.join(out_dir, "frames"), gif)
    _report(out_dir, gif, time.monotonic() - started)
    return 0


def _check_ready() -> str:
    """The demo's Blender script, once we know it can run."""
    script = os.path.join(ROOT, "demo", "blender_demo.py")
    if not os.path.exists(script):
        raise ValueError("the demo runs from a checkout of the project (demo/ is missing)")
    if subprocess.run([sys.executable, "-c", "import bpy"], capture_output=True).returncode != 0:
        raise ValueError("the demo needs the bpy module (pip install bpy==5.0.1 on Python 3.11)")
    return script


def _clear(out_dir: str) -> None:
    """Removes what an earlier demo left, so nothing stale is shown."""
    for stale in ("frames", "renders", "renders_shown", "dream_demo.blend", "dream_preview.mp4",
                  "dream_preview.gif"):
        path = os.path.join(out_dir, stale)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    os.makedirs(out_dir, exist_ok=True)


def _blender_env(out_dir: str, server) -> dict:
    """Blender with its own user folders, pointed at our server."""
    token_file = os.path.join(out_dir, ".token")
    if os.path.exists(token_file):
        os.remove(token_file)
    write_token(token_file, server.token)
    user = os.path.join(out_dir, ".blender")
    return {**os.environ, "DREAM_SERVER_ADDRESS": server.address, "DREAM_SERVER_TOKEN_FILE": token_file,
            "BLENDER_USER_CONFIG": os.path.join(user, "config"), "BLENDER_USER_SCRIPTS": os.path.join(user, "scripts"),
            "BLENDER_USER_EXTENSIONS": os.path.join(user, "extensions")}


def _report(out_dir: str, gif: str, seconds: float) -> None:
    print(f"demo finished in {seconds:.0f} s:")
    print(f"  blend file (the dreamed strip is in the scene 'Scene Dream'): "
          f"{os.path.join(out_dir, 'dream_demo.blend')}")
    print(f"  dreamed frames:      {os.path.join(out_dir, 'frames')}")
    print(f"  renders (EXR):       {os.path.join(out_dir, 'renders')}")
    mp4 = os.path.join(out_dir, "dream_preview.mp4")
    if os.path.exists(mp4):
        print(f"  sequencer preview:   {mp4}")
    print(f"  render | dream GIF:  {gif}")
