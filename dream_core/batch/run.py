"""Dreaming a list of frames to disk: resumable (finished frames are
skipped), atomic (a frame appears only when complete), with progress bars.

The work of one frame is a *backend*: in this process
(:class:`~dream_core.batch.local.LocalBackend`) or on a dream server
(:class:`~dream_core.batch.remote.RemoteBackend`), both taking the same settings.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Optional, Protocol

from tqdm import tqdm

from ..config import Progress, ProgressCallback
from ..io import Picture, read_image, write_image
from ..wire.plans import FramePlan, resume_point
from .seams import Seams


class Backend(Protocol):
    def dream_frames(self, pictures: Iterable[Picture], progress: ProgressCallback,
                     resume: Optional[tuple[Picture, Picture]] = None) -> Iterator[Picture]:
        """Dreams pictures in order (a sequence: each may depend on the one
        before), yielding results in order; ``resume`` is the render and the
        dream of the frame before the first, when a resumed run has them."""


def _resume_pictures(plans: list[FramePlan], todo: list[FramePlan]) -> Optional[tuple[Picture, Picture]]:
    """A resumed run continues the sequence from the last frame on disk (its
    render and its dream) rather than starting the motion afresh."""
    before = resume_point(plans, todo)
    if before is None:
        return None
    try:
        render, dreamed = read_image(before.source), read_image(before.target)
    except (OSError, ValueError):
        return None  # unreadable: dream on without it
    return (render, dreamed) if render.pixels.shape[:2] == dreamed.pixels.shape[:2] else None


class _Bars:
    """A frames bar and a steps bar for the frame being dreamed."""

    def __init__(self, total: int, skipped: int, quiet: bool) -> None:
        self.frames = tqdm(total=total, initial=skipped, unit="frame", desc="frames", disable=quiet or total < 2)
        self.steps = tqdm(unit="step", desc="dream", leave=False, disable=quiet)

    def progress(self, p: Progress) -> None:
        if p.octave == 1 and p.iteration == 1:  # the next frame started
            self.steps.reset(total=p.octaves * p.iterations)
        self.steps.set_postfix_str(f"octave {p.octave}/{p.octaves}", refresh=False)
        self.steps.update(1)

    def close(self) -> None:
        self.steps.close()
        self.frames.close()


def chunk_of(plans: list[FramePlan], frames: Optional[tuple[int, int]]) -> list[FramePlan]:
    """The plans whose frame numbers are in ``frames`` (first, last), or all."""
    return plans if frames is None else [p for p in plans if frames[0] <= p.frame <= frames[1]]


def preroll_plans(plans: list[FramePlan], first: FramePlan, count: int) -> list[FramePlan]:
    """Up to ``count`` frames of the sequence just before ``first``: dreamed, not written, so a chunk
    starts from a warm chain."""
    index = plans.index(first)
    return plans[max(0, index - count):index]


class ChunkRun:
    """What one run over a chunk of ``plans`` does, worked out before any
    dreaming: the frames still to write (``todo``), the render and dream it
    carries on from (``resume``) or else the pre-roll it warms up with
    (``warm``), and which results the cross-fades keep. The same object is
    used where the dreaming happens beside the files (:func:`run_batch`) and
    where a Ray driver reads and writes for an actor that cannot reach them."""

    def __init__(self, plans: list[FramePlan], frames: Optional[tuple[int, int]] = None, preroll: int = 0,
                 fade: int = 0, overwrite: bool = False) -> None:
        self.plans = plans
        self.chunk = chunk_of(plans, frames)
        self.todo = [p for p in self.chunk if overwrite or not os.path.exists(p.target)]
        self._written = {p.frame for p in self.todo}
        self.resume = _resume_pictures(plans, self.todo)
        self.warm = preroll_plans(plans, self.todo[0], preroll) if self.todo and self.resume is None and preroll > 0 \
            else []
        self.seams = Seams(os.path.dirname(plans[0].target), fade) if fade and frames is not None else None
        self.faded = set(p.frame for p in self.warm[-fade:]) if self.seams else set()
        last_of_shot = self.chunk and self.chunk[-1] is plans[-1]
        self.kept = set(p.frame for p in self.chunk[-fade:]) if self.seams and not last_of_shot else set()

    @property
    def order(self) -> list[FramePlan]:
        """The frames in the order they are dreamed: the pre-roll, then the chunk."""
        return self.warm + self.todo

    @property
    def skipped(self) -> int:
        return len(self.chunk) - len(self.todo)

    def sources(self) -> Iterator[Picture]:
        """The renders to dream, read lazily (a backend may read ahead)."""
        return (read_image(plan.source) for plan in self.order)

    def keep(self, plan: FramePlan, dreamed: Picture) -> bool:
        """Stores one result; True when it was a frame of the chunk (written),
        False for the pre-roll (only a cross-fade keeps any of it)."""
        if plan.frame not in self._written:
            if plan.frame in self.faded:
                self.seams.keep_preroll(plan, dreamed, seam=self.todo[0].frame)
            return False
        if plan.frame in self.kept:
            self.seams.keep_own(plan, dreamed)
        write_image(plan.target, dreamed)
        return True

    def finish(self) -> None:
        """Blends the seams this chunk completes."""
        if self.seams is not None and self.chunk:
            self.seams.merge(self.plans, touched=(min([self.chunk[0].frame, *self.faded]), self.chunk[-1].frame))


def run_batch(plans: list[FramePlan], backend: Backend, *, overwrite: bool = False, quiet: bool = False,
              frames: Optional[tuple[int, int]] = None, preroll: int = 0, fade: int = 0) -> tuple[int, int]:
    """Dreams each plan's source into its target; returns (done, skipped).
    ``frames`` limits the run to a chunk of the sequence; it carries on from
    the dream of the frame before when that is on disk, else first dreams
    ``preroll`` frames before the chunk and drops them, or with ``fade``
    cross-fades the last ``fade`` of them into the chunk before (see seams)."""
    run = ChunkRun(plans, frames, preroll, fade, overwrite)
    bars = _Bars(len(run.chunk), run.skipped, quiet)
    try:
        results = backend.dream_frames(run.sources(), bars.progress, run.resume)
        for plan, dreamed in zip(run.order, results):
            if run.keep(plan, dreamed):
                bars.frames.update(1)
    finally:
        bars.close()
    run.finish()
    return len(run.todo), run.skipped
