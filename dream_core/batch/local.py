"""A batch backend that dreams in this process, with a model kept loaded."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Optional

import numpy as np

from ..config import DreamSettings, ProgressCallback
from ..engine import cached_dreamer
from ..errors import ShapeMismatch
from ..frame import carried_state
from ..frame.pipeline import SequenceDreamer
from ..io import read_image
from ..io.transfer import grey
from .run import Dreamed, Work


def load_mask(path: str) -> np.ndarray:
    """A grey image as a per-pixel mask in [0, 1]."""
    return grey(read_image(path).pixels)


def guide_and_mask(settings: DreamSettings) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """The guide image's pixels and the mask file's mask that ``settings`` name, read once
    (on Ray, by the driver: an actor on another machine may not reach the files)."""
    guide = read_image(settings.guide).pixels if settings.guide else None
    mask = load_mask(settings.mask) if settings.mask not in (None, "alpha") else None
    return guide, mask


class LocalBackend:
    """The frames of one run form one sequence, dreamed in order; the model
    stays loaded for the next run (a Ray actor dreams chunk after chunk).
    ``lockstep`` K > 1: several sequences' next frames are dreamed as one
    batch (:meth:`dream_many`), and every engine call is filled to K frames
    (see frame/lockstep.py), a lone sequence's frames too, so a frame is
    the same whichever frames it was dreamed with."""

    def __init__(self, settings: DreamSettings, device: str = "auto",
                 images: Optional[tuple[Optional[np.ndarray], Optional[np.ndarray]]] = None,
                 lockstep: int = 1) -> None:
        self.settings = settings
        self.dreamer = cached_dreamer(settings.model, settings.weights, device)
        self.guide, self.mask = images if images is not None else guide_and_mask(settings)
        self.lockstep = lockstep

    def dream_frames(self, works: Iterable[Work], progress: ProgressCallback,
                     restore: Optional[bytes] = None) -> Iterator[Dreamed]:
        sequence = self.start(restore)  # each segment of a run is a sequence of its own
        for work in works:
            yield self.dream_next(sequence, work, progress)

    def start(self, restore: Optional[bytes] = None) -> SequenceDreamer:
        """A new sequence, carrying on exactly from the state ``restore`` when given."""
        sequence = SequenceDreamer()
        if restore is not None:
            sequence.restore(carried_state.decode(restore), self.dreamer.device)
        return sequence

    def dream_next(self, sequence: SequenceDreamer, work: Work,
                   progress: Optional[ProgressCallback] = None) -> Dreamed:
        if self.lockstep > 1:
            return self.dream_many([(sequence, work)], progress)[0]
        self._check_mask(work.picture)
        dreamed = sequence.dream(self.dreamer, work.picture, self.settings, frame=work.frame, mask=self.mask,
                                 guide=self.guide, callback=progress, blend=work.blend)
        return dreamed, sequence.state() if work.keep_state else None

    def dream_many(self, nexts: list[tuple[SequenceDreamer, Work]],
                   progress: Optional[ProgressCallback] = None) -> list[Dreamed]:
        """The next frame of each sequence (each sequence once), in one
        engine call a frame size, filled to ``lockstep`` frames."""
        from ..frame.lockstep import NextFrame, dream_together

        results: dict[int, Dreamed] = {}
        sizes = {(work.picture.height, work.picture.width) for _, work in nexts}
        for size in sorted(sizes):
            group = [(i, sequence, work) for i, (sequence, work) in enumerate(nexts)
                     if (work.picture.height, work.picture.width) == size]
            for _, _, work in group:
                self._check_mask(work.picture)
            frames = [NextFrame(sequence, work.picture, work.frame, self.mask, work.blend)
                      for _, sequence, work in group]
            dreamed = dream_together(self.dreamer, frames, self.settings, batch=self.lockstep, guide=self.guide,
                                     callback=progress)
            for (i, sequence, work), picture in zip(group, dreamed):
                results[i] = picture, sequence.state() if work.keep_state else None
        return [results[i] for i in range(len(nexts))]

    def _check_mask(self, picture) -> None:
        if self.mask is not None and self.mask.shape != (picture.height, picture.width):
            raise ShapeMismatch(f"mask {self.settings.mask} is {self.mask.shape[1]}x{self.mask.shape[0]}, "
                                f"frames are {picture.width}x{picture.height}")
