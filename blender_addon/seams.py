"""Cross-fades at the seams of farm chunks (Dream on Render with
``-- --dream-write-from A --dream-fade N``). Two chunks dreamed side by side
grow different patterns, so the first frame of a chunk jumps from the last of
the chunk before even after a pre-roll. The chunk after a seam keeps the
scene-linear dreams of its last N pre-roll frames under ``seams/`` in the
Dream output folder; the chunk before keeps all its dreams under ``linear/``
anyway. Whichever chunk ends second writes each such frame again as a ramp
from the chunk before's dream to the chunk after's, through the scene's
colour management into the user's format: the same rule as the command
line's ``--fade`` (:mod:`dream_core.batch.seams`), the same weights.

Blender's Python may have no numpy (Debian's Blender 3.4 has none), so the
pixels are mixed with the standard library: about a second per 1080p frame,
N frames per seam, once per chunk."""
from __future__ import annotations

import os
import re
import tempfile
from array import array
from functools import partial
from typing import Callable

import bpy

from .colour import DisplayWriter
from .errors import DreamError
from .wire.plans import fade_weight, seams_touching


def frame_of(name: str, pattern: str) -> int:
    """The frame number in ``name``, a file named after ``pattern`` (``#####`` for the number); -1 if not one."""
    head, _, tail = os.path.basename(pattern).partition("#####")
    match = re.fullmatch(re.escape(head) + r"(-?\d+)" + re.escape(tail), name)
    return int(match.group(1)) if match else -1


def mixed_image(writer: DisplayWriter, own_exr: str, after_exr: str, share: float, scratch: str):
    """A new image: ``own_exr`` moved ``share`` of the way to ``after_exr``
    (both scene-linear, the same size); ``scratch``: a folder for plain copies."""
    own = writer.readable(own_exr, os.path.join(scratch, "own.exr"))
    try:
        after = writer.readable(after_exr, os.path.join(scratch, "after.exr"))
        try:
            if not len(own.pixels):
                raise DreamError(f"Blender cannot read the pixels of {own_exr}")
            if tuple(own.size) != tuple(after.size) or len(own.pixels) != len(after.pixels):
                raise DreamError(f"the seam copy {after_exr} is {tuple(after.size)}, "
                                 f"the frame {own_exr} is {tuple(own.size)}")
            a, b = array("f", bytes(4 * len(own.pixels))), array("f", bytes(4 * len(after.pixels)))
            own.pixels.foreach_get(a)
            after.pixels.foreach_get(b)
            own.pixels.foreach_set(array("f", [x + share * (y - x) for x, y in zip(a, b)]))
        finally:
            bpy.data.images.remove(after)
    except BaseException:
        bpy.data.images.remove(own)
        raise
    return own


def merge(root: str, touched: tuple[int, int], linear_pattern: str, own_path: Callable[[int], str],
          target_path: Callable[[int], str], writer: DisplayWriter) -> list[int]:
    """Writes the faded frames of the seams beside ``touched`` whose two
    dreams are on disk (the chunk before's ``own_path(frame)``, the chunk
    after's copy under ``root``) to ``target_path(frame)``; returns their frames."""
    merged = []
    for folder, seam, fade in seams_touching(root, touched):
        for name in sorted(os.listdir(folder)):
            frame = frame_of(name, linear_pattern)
            own = own_path(frame)
            if frame < 0 or not os.path.exists(own):
                continue  # the chunk before has not dreamed it yet: it blends it when it ends
            share, after = fade_weight(seam - frame, fade), os.path.join(folder, name)
            with tempfile.TemporaryDirectory(prefix="dream_seam_") as scratch:
                writer.write_from(partial(mixed_image, writer, own, after, share, scratch), target_path(frame))
            merged.append(frame)
    return merged
