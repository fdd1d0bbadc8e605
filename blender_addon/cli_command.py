"""``blender -b shot.blend -c dream [--frames A-B] [--layer L] ...`` on
Blender 4.2+: a farm-friendly command with an exit status."""
from __future__ import annotations

import argparse

import bpy

from . import compat
from .command_line import frame_range
from .properties import PANEL_SETTINGS
from .shot.settings import option, out_of_range

_handle = None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blender -b FILE.blend -c dream",
                                description="Render and dream the scene's animation into the Sequencer, "
                                            "then save the .blend.")
    p.add_argument("--frames", help="frame range A-B (default: the scene's)")
    for setting in PANEL_SETTINGS:  # the panel's settings: the scene keeps its value where no option is given
        options = option(setting, None)
        if options.get("action") == "store_true":
            options["action"] = argparse.BooleanOptionalAction
        options["help"] += " (default: the scene's)"
        p.add_argument(setting.flag, **options)
    p.add_argument("--no-save", action="store_true", help="do not save the .blend afterwards")
    return p


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    scene = bpy.context.scene
    given = [(s, getattr(args, s.name)) for s in PANEL_SETTINGS if getattr(args, s.name) is not None]
    for setting, value in given:
        why = out_of_range(setting, value)
        if why is not None:  # Blender would clamp it without a word
            print(f"dream: {why}")
            return 2
    for setting, value in given:
        setattr(scene.dream, setting.name, value)
    kwargs = {}
    if args.frames:
        try:
            start, end = frame_range(args.frames)
        except ValueError as err:
            print(f"dream: {err}")
            return 2
        kwargs = {"frame_start": start, "frame_end": end}
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
