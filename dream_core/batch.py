"""Dreaming a list of frames to disk: resumable (finished frames are
skipped), atomic (a frame appears only when complete), with progress bars.

The work of one frame is a *backend*: in this process (:class:`LocalBackend`)
or on a dream server (``dream_core.client``), both taking the same settings.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Callable, Optional, Protocol

import numpy as np
from tqdm import tqdm

from .colour import grey
from .engine import Progress
from .frames_dir import FrameJob
from .io import Picture, read_image, write_image
from .settings import DreamSettings


class Backend(Protocol):
    def dream_frames(self, pictures: Iterable[Picture], progress: Callable[[Progress], None],
                     resume: Optional[tuple[Picture, Picture]] = None) -> Iterator[Picture]:
        """Dreams pictures in order (a sequence: each may depend on the one
        before), yielding results in order; ``resume`` is the render and the
        dream of the frame before the first, when a resumed run has them."""


def load_mask(path: str, height: int, width: int) -> np.ndarray:
    """A grey image as per-pixel strength in [0, 1], checked against the frame size."""
    pixels = read_image(path).pixels
    if pixels.shape[:2] != (height, width):
        raise ValueError(f"mask {path} is {pixels.shape[1]}x{pixels.shape[0]}, frames are {width}x{height}")
    return grey(pixels)


class LocalBackend:
    """Dreams in this process with a model kept loaded."""

    def __init__(self, settings: DreamSettings, device: str = "auto") -> None:
        from .api import cached_dreamer

        self.settings = settings
        self.dreamer = cached_dreamer(settings.model, settings.weights, device)
        guide = read_image(settings.guide).pixels if settings.guide else None
        self.objective = self.dreamer.objective(settings.layer_for(self.dreamer.info.layers), settings.channels,
                                                guide)
        self.previous = None  # the last frame, for temporal coherence

    def dream_frames(self, pictures: Iterable[Picture], progress: Callable[[Progress], None],
                     resume: Optional[tuple[Picture, Picture]] = None) -> Iterator[Picture]:
        from .api import resume_previous

        if resume is not None and self.settings.temporal != "none":
            self.previous = resume_previous(self.dreamer, *resume)
        for picture in pictures:
            yield self.dream(picture, progress)

    def dream(self, picture: Picture, progress: Callable[[Progress], None]) -> Picture:
        from .api import alpha_strength, dream_sequence_frame

        s = self.settings
        strength = None
        if s.mask == "alpha":
            strength = alpha_strength(picture.pixels)
        elif s.mask:
            strength = load_mask(s.mask, picture.height, picture.width)
        dreamed, self.previous = dream_sequence_frame(
            self.dreamer, picture, self.objective, s.config, mode=s.temporal, previous=self.previous,
            strength=strength, keep_colors=s.keep_colors, mix=s.strength, callback=progress)
        return dreamed


def _resume_from(jobs: list[FrameJob], todo: list[FrameJob]) -> Optional[tuple[Picture, Picture]]:
    """A resumed run continues the sequence from the last frame on disk (its
    render and its dream) rather than starting the motion afresh."""
    if not todo:
        return None
    index = jobs.index(todo[0])
    if index == 0 or not os.path.exists(jobs[index - 1].target):
        return None
    before = jobs[index - 1]
    try:
        render, dreamed = read_image(before.source), read_image(before.target)
    except (OSError, ValueError):
        return None  # unreadable: dream on without it
    return (render, dreamed) if render.pixels.shape[:2] == dreamed.pixels.shape[:2] else None


def run_batch(jobs: list[FrameJob], backend: Backend, *, overwrite: bool = False,
              quiet: bool = False) -> tuple[int, int]:
    """Dreams each job's source into its target; returns (done, skipped)."""
    todo = [j for j in jobs if overwrite or not os.path.exists(j.target)]
    skipped = len(jobs) - len(todo)
    frames_bar = tqdm(total=len(jobs), initial=skipped, unit="frame", desc="frames", disable=quiet or len(jobs) < 2)
    steps_bar = tqdm(unit="step", desc="dream", leave=False, disable=quiet)
    def progress(p: Progress) -> None:
        if p.octave == 1 and p.iteration == 1:  # the next frame started
            steps_bar.reset(total=p.octaves * p.iterations)
        steps_bar.set_postfix_str(f"octave {p.octave}/{p.octaves}", refresh=False)
        steps_bar.update(1)

    try:
        pictures = (read_image(job.source) for job in todo)  # read lazily: a backend may read ahead
        for job, dreamed in zip(todo, backend.dream_frames(pictures, progress, _resume_from(jobs, todo))):
            write_image(job.target, dreamed)
            frames_bar.update(1)
    finally:
        steps_bar.close()
        frames_bar.close()
    return len(todo), skipped
