"""What Blender's command line asks of the add-on, read as plain text (no
bpy): a farm chunk's ``--dream-write-from`` after ``--``, the ``dream``
command's ``--frames A-B``, and the frames Dream Animation is asked for."""
from __future__ import annotations

from typing import Optional, Sequence

from .user_errors import UserError

WRITE_FROM = "--dream-write-from"
OLD_FADE = "--dream-fade"


def script_arguments(argv: Sequence[str]) -> list[str]:
    """The arguments after ``--`` (Blender leaves those to scripts)."""
    argv = list(argv)
    return argv[argv.index("--") + 1:] if "--" in argv else []


def script_argument(argv: Sequence[str], name: str) -> Optional[int]:
    """The number after ``name`` among the arguments after ``--``, or None."""
    args = script_arguments(argv)
    if OLD_FADE in args:
        raise UserError(f"{OLD_FADE} is now the scene's Seam Fade (Dream Renders panel, saved in the .blend): "
                        "every chunk of the shot uses it without arguments")
    if name not in args:
        return None
    try:
        return int(args[args.index(name) + 1])
    except (IndexError, ValueError):
        raise UserError(f"{name} needs a number") from None


def write_from_argument(argv: Sequence[str]) -> Optional[int]:
    """``blender -b shot.blend -s 90 -e 200 -a -- --dream-write-from 100``: a
    farm chunk of frames 100-200 with frames 90-99 as its pre-roll."""
    return script_argument(argv, WRITE_FROM)


def run_frames(start: int, end: int, scene_start: int, scene_end: int) -> range:
    """Dream Animation's frames, as its ``frame_start``/``frame_end`` (a
    script's, or ``--frames``) ask: -1 is the scene's own; none is refused."""
    start = scene_start if start < 0 else start
    end = scene_end if end < 0 else end
    if end < start:
        raise UserError(f"the frame range {start}-{end} is empty")
    return range(start, end + 1)


def frame_range(text: str) -> tuple[int, int]:
    """``--frames A-B`` (or ``A``): the first and last frame; ValueError says what is wrong."""
    try:
        start, _, end = text.partition("-")
        return int(start), int(end or start)
    except ValueError:
        raise ValueError(f"--frames must look like 1-48, got {text!r}") from None
