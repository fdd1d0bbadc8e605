"""Frames on disk: where each frame comes from and where its dream goes.
Standard library only: the CLI's batches and the add-on plan frames alike,
and resume alike, from the last frame whose dream is on disk."""
from __future__ import annotations

import os
import re
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


# -- cross-fades at chunk seams (the CLI's --fade, the add-on's --dream-fade)

def seam_folder(seam: int, fade: int) -> str:
    """The folder (under a seams root) of the copies the chunk starting at
    ``seam`` keeps of its last ``fade`` pre-roll frames."""
    return f"seam_{seam}_{fade}"


def fade_weight(before_seam: int, fade: int) -> float:
    """The share of the chunk after a seam in the frame ``before_seam``
    frames before it (1 = the last frame before the seam): a ramp from the
    chunk before (far from the seam) to the chunk after (at it)."""
    return (fade - before_seam + 1) / (fade + 1)


def seams_touching(root: str, touched: tuple[int, int]) -> list[tuple[str, int, int]]:
    """The seam folders under ``root`` (path, seam, fade) whose faded frames
    overlap ``touched`` (the first and last frame a chunk wrote or kept):
    the seams that chunk may complete. Seams elsewhere in the shot were
    completed by the chunks beside them."""
    if not os.path.isdir(root):
        return []
    found = []
    for entry in sorted(os.listdir(root)):
        match = re.fullmatch(r"seam_(-?\d+)_(\d+)", entry)
        if match:
            seam, fade = int(match.group(1)), int(match.group(2))
            if seam - fade <= touched[1] and seam - 1 >= touched[0]:
                found.append((os.path.join(root, entry), seam, fade))
    return found
