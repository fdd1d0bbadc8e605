"""Frames on disk: where each frame comes from and where its dream goes.
Standard library only: the CLI's batches and the add-on plan frames alike
(what to do with each is the shot planner's, see shots.py)."""
from __future__ import annotations

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
