"""``blender -b shot.blend -c dream [--frames A-B] [--layer L] ...`` on
Blender 4.2+: a farm-friendly command with an exit status."""
from __future__ import annotations

import argparse

import bpy

from . import compat

_handle = None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blender -b FILE.blend -c dream",
                                description="Render and dream the scene's animation into the Sequencer, "
                                            "then save the .blend.")
    p.add_argument("--frames", help="frame range A-B (default: the scene's)")
    p.add_argument("--layer", help="layer to amplify")
    p.add_argument("--octaves", type=int)
    p.add_argument("--iterations", type=int)
    p.add_argument("--step", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-save", action="store_true", help="do not save the .blend afterwards")
    return p


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    scene = bpy.context.scene
    for name in ("layer", "octaves", "iterations", "step", "seed"):
        if getattr(args, name) is not None:
            setattr(scene.dream, name, getattr(args, name))
    kwargs = {}
    if args.frames:
        try:
            start, _, end = args.frames.partition("-")
            kwargs = {"frame_start": int(start), "frame_end": int(end or start)}
        except ValueError:
            print(f"dream: --frames must look like 1-48, got {args.frames!r}")
            return 2
    try:
        bpy.ops.dream.render_animation(**kwargs)
    except RuntimeError as err:  # the operator reported an error
        print(f"dream: {err}")
        return 1
    if not args.no_save and bpy.data.filepath:
        bpy.ops.wm.save_mainfile()
    return 0


def register() -> None:
    global _handle
    if compat.has_cli_commands():
        _handle = bpy.utils.register_cli_command("dream", run)


def unregister() -> None:
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None
