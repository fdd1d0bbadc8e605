"""Placing dreamed frames in the Video Sequence Editor."""
from __future__ import annotations

import os

from . import compat
from .errors import DreamError


def free_channel(scene, start: int, end: int, avoid: str = "", minimum: int = 1) -> int:
    """The lowest channel from ``minimum`` with no strip (but ``avoid``) overlapping [start, end]."""
    busy = {s.channel for s in compat.all_strips(scene)
            if s.name != avoid and s.frame_final_start <= end and s.frame_final_end > start}
    channel = minimum
    while channel in busy:
        channel += 1
    return channel


def place_strip(scene, name: str, files: list[str], frame_start: int, channel: int = 0, minimum: int = 1):
    """An image strip showing ``files`` from ``frame_start`` on ``channel``
    (0: the first free one from ``minimum``); a strip of the same name from
    an earlier run is replaced, not duplicated."""
    if not files:
        raise DreamError("no dreamed frames to place in the Sequencer")
    end = frame_start + len(files) - 1
    channel = channel or free_channel(scene, frame_start, end, avoid=name, minimum=minimum)
    strips = compat.strips(scene)
    for old in [s for s in compat.all_strips(scene) if s.name == name]:
        strips.remove(old)
    strip = strips.new_image(name=name, filepath=files[0], channel=channel, frame_start=frame_start)
    for path in files[1:]:
        strip.elements.append(os.path.basename(path))
    return strip
