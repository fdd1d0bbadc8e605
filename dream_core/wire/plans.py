"""Frames on disk: where each frame comes from and where its dream goes.
Standard library only: the CLI's batches and the add-on plan frames alike,
and resume alike, from the last frame whose dream is on disk."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional


@dataclass
class FramePlan:
    """One frame to dream: its number, the file it is read from (a render)
    and the file its dream is written to; ``params`` are the frame's own
    settings where they change over a shot (keyframes)."""

    frame: int
    source: str
    target: str
    params: Optional[dict] = None

    @property
    def done(self) -> bool:
        return os.path.exists(self.target)


def resume_point(plans: list[FramePlan], todo: list[FramePlan]) -> Optional[FramePlan]:
    """The frame just before the first one to do, when its render and its
    dream are both on disk: a resumed run sends them along, so the sequence
    carries on from there even if the server has lost the job."""
    if not todo:
        return None
    index = plans.index(todo[0])
    before = plans[index - 1] if index > 0 else None
    if before is None or not before.done or not os.path.exists(before.source):
        return None
    return before
