"""Frames of several sequences dreamed in lockstep: one engine call, one
batch, for the next frame of each (chunks of one shot side by side on one
device: more work per kernel than one frame gives a GPU). Each sequence
keeps its own carried state; the engine steps each frame by its own
gradient and step mask, so each comes out as it would alone, up to float
rounding. A seam's cross-fade (``blend``) refines its frame alone after.

``batch``: the batch is always filled to this many frames (with copies of
the first) so that a frame's rounding does not depend on how many others
were dreamed with it: measured on a CPU, a frame's dream in a batch of one
size is bit for bit the same whatever its partners, while a batch of one
may round differently; a resumed run then makes the frames an
uninterrupted one makes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..config import DreamSettings, ProgressCallback
from ..engine import Dreamer
from ..engine.dreamer import StepMask
from ..errors import BadSetting, ShapeMismatch
from ..io import Picture
from .pipeline import SequenceDreamer


@dataclass(frozen=True)
class NextFrame:
    """One sequence's next frame, as :meth:`SequenceDreamer.dream` takes it."""

    sequence: SequenceDreamer
    picture: Picture
    frame: Optional[int] = None
    mask: Optional[np.ndarray] = None
    blend: Optional[tuple[Picture, float]] = None


def dream_together(dreamer: Dreamer, frames: list[NextFrame], settings: DreamSettings, *, batch: int = 0,
                   guide: Optional[np.ndarray] = None, callback: Optional[ProgressCallback] = None) -> list[Picture]:
    """Dreams each sequence's next frame (frames of one size, one
    objective) with one engine call; returns the outputs in order."""
    dreamings = [f.sequence.prepare(dreamer, f.picture, settings, frame=f.frame, mask=f.mask, guide=guide)
                 for f in frames]
    first = dreamings[0]
    for dreaming in dreamings[1:]:
        if dreaming.base.shape != first.base.shape:
            raise ShapeMismatch(f"frames dreamed together must be of one size: {list(first.base.shape[-2:])} and "
                                f"{list(dreaming.base.shape[-2:])}")
        if dreaming.objective.key != first.objective.key:
            raise BadSetting("frames dreamed together must share one objective")
    padding = [first] * max(0, batch - len(dreamings))
    base = torch.cat([d.base for d in dreamings + padding])
    steps = stacked_steps([d.steps for d in dreamings + padding], first.base)
    dreamed = dreamer.run(base, first.objective, settings.config, step_mask=steps, callback=callback)
    return [f.sequence.finish(dreamer, d, dreamed[i:i + 1], settings, blend=f.blend)
            for i, (f, d) in enumerate(zip(frames, dreamings))]


def stacked_steps(masks: list[StepMask], like: torch.Tensor) -> StepMask:
    """Each frame's step mask (any of which may differ by octave, or be
    None: full steps) as one [N, 1, H, W] mask for the batch."""
    if all(m is None for m in masks):
        return None

    def at(remaining: int) -> Optional[torch.Tensor]:
        got = [m(remaining) if callable(m) else m for m in masks]
        if all(g is None for g in got):
            return None
        full = torch.ones_like(like[:1, :1])  # a step scaled by 1 is the step: the frame dreams as it would alone
        return torch.cat([full if g is None else g.to(full) for g in got])

    return at if any(callable(m) for m in masks) else at(0)
