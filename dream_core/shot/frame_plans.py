"""Frames on disk: where each frame comes from and where its dream goes.
Standard library only: the CLI's batches and the add-on plan frames alike
(what to do with each is the shot planner's, see planner.py)."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Optional


@dataclass
class FramePlan:
    """One frame to dream: its number, the file it is read from (a render)
    and the file its dream is written to; ``params`` are the frame's own
    settings where they change over a shot (keyframes); ``shown``: the
    render as the view transform shows it, when the dream acts on that."""

    frame: int
    source: str
    target: str
    params: Optional[dict] = None
    shown: Optional[str] = None


_MARKED = re.compile(r"_[0-9a-f]{8}$")
NAME_BYTES = 96  # of a name in a file name: with the frame number and suffix well inside a file system's 255


def name_in_path(name: str) -> str:
    """A Blender name (a scene's, a strip's) as part of one file name.
    Letters and digits of any script, ``-``, ``_`` and inner dots stay; any
    other character (a separator, ``..``'s leading dot, a control character)
    becomes ``_``, and an over-long name is cut. Where anything changed, a
    short digest of the whole name follows, so two names never share files:
    ``a/b`` and ``a_b``, or two long names with the same start (a name that
    already ends like a digest gets one too)."""
    last = len(name) - 1  # a leading dot hides a file; Windows drops a trailing one
    kept = "".join(c if c.isalnum() or c in "-_" or (c == "." and 0 < i < last) else "_" for i, c in enumerate(name))
    if kept == name and 0 < len(name.encode("utf-8")) <= NAME_BYTES and not _MARKED.search(name):
        return name
    while len(kept.encode("utf-8")) > NAME_BYTES:
        kept = kept[:-1]
    return f"{kept}_{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
