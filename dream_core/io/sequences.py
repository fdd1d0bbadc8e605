"""Frame sequences on disk: Blender names frames ``name0001.png``; order
them by that number, and plan where each dreamed frame goes
(:class:`~dream_core.shot.frame_plans.FramePlan`)."""
from __future__ import annotations

import os
import re

from ..shot.frame_plans import FramePlan
from .images import FORMATS

_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def frame_number(path: str) -> int | None:
    """The last run of digits in a file name (Blender's frame number), or None."""
    match = _NUMBER.search(os.path.basename(os.path.splitext(path)[0]))
    return int(match.group(1)) if match else None


def list_frames(folder: str) -> list[str]:
    """Image files in ``folder``, sorted by frame number, then name."""
    names = [n for n in os.listdir(folder)
             if os.path.splitext(n)[1].lower() in FORMATS and not n.startswith(".")]
    names.sort(key=lambda n: (frame_number(n) is None, frame_number(n) or 0, n))
    return [os.path.join(folder, n) for n in names]


def plan_frames(sources: list[str], out_dir: str, suffix: str | None) -> list[FramePlan]:
    """One plan per source frame: same name in ``out_dir``, optionally another
    file type; numbered by the file name's frame number, else by position."""
    plans = []
    for index, source in enumerate(sources, start=1):
        stem, ext = os.path.splitext(os.path.basename(source))
        number = frame_number(source)
        plans.append(FramePlan(index if number is None else number, source,
                               os.path.join(out_dir, stem + (suffix or ext))))
    return plans


def same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)
