"""A shot's chunks dreamed side by side on one device (``dream --lockstep
K``): the folder (or the ``--frames`` range) is cut into K chunks, each a
:class:`~dream_core.batch.run.ChunkRun` as with ``--frames`` or ``--ray``
(its own chain and carried state, kept frames skipped, a killed run
carried on from its kept states, seams pre-rolled and cross-faded as the
chunk planner says), and the chunks' next frames are dreamed as one batch
(:meth:`~dream_core.batch.local.LocalBackend.dream_many`): what fills a GPU
that one frame of a chain leaves idle. The seams are cross-faded once
every chunk has dreamed, one after the other.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Callable, Optional

from ..config import ProgressCallback
from ..shot.frame_plans import FramePlan
from ..shot.provenance import Records
from .local import LocalBackend
from .run import BatchResult, ChunkRun, ProgressBars, provenance_params
from .seams import merge_seams


def even_ranges(plans: list[FramePlan], chunks: int) -> list[tuple[int, int]]:
    """``plans`` as ``chunks`` runs of frames whose lengths differ by at most
    one, as (first, last) frame numbers (runs of ceil(n / chunks) frames
    could make fewer chunks, or a last one of a single frame)."""
    chunks = max(1, min(chunks, len(plans)))
    size, longer = divmod(len(plans), chunks)
    ranges, start = [], 0
    for i in range(chunks):
        end = start + size + (i < longer)
        ranges.append((plans[start].frame, plans[end - 1].frame))
        start = end
    return ranges


def run_in_lockstep(plans: list[FramePlan], backend: LocalBackend, chunks: int, *, overwrite: bool = False,
                    quiet: bool = False, frames: Optional[tuple[int, int]] = None, preroll: int = 0, fade: int = 0,
                    params: Optional[dict] = None, records: Optional[Records] = None) -> BatchResult:
    """Dreams ``plans`` (or the chunk ``frames`` of them) as ``chunks``
    chunks side by side; what :func:`~dream_core.batch.run.run_batch` is
    for one chunk."""
    params = params if params is not None else provenance_params(backend.settings)
    first, last = frames if frames is not None else (plans[0].frame, plans[-1].frame)
    share = [p for p in plans if first <= p.frame <= last]
    ranges = even_ranges(share, chunks)
    runs = [ChunkRun(plans, params, r, preroll, fade, overwrite, records) for r in ranges]
    bars = ProgressBars(sum(len(r.plan.frames) for r in runs), sum(r.skipped for r in runs), quiet)
    merged, waiting = [], ()
    try:
        dream_side_by_side(runs, backend, bars.progress, lambda: bars.frames.update(1))
        for run in runs:
            done, held = merge_seams(run, lambda works, restore: backend.dream_frames(works, bars.progress, restore))
            merged += done
            waiting += held
            bars.frames.update(len(done))
    finally:
        bars.close()
    skipped = set().union(*(r.skipped_frames for r in runs)) - set(merged)  # a held frame merged now is done
    return BatchResult(sum(r.written for r in runs) + len(merged), len(skipped), waiting)


def dream_side_by_side(runs: list[ChunkRun], backend: LocalBackend, progress: ProgressCallback,
                       on_written: Callable[[], None] = lambda: None) -> None:
    """Every run's segments, the next frame of each run at a time, as one
    batch; each result is kept as :meth:`ChunkRun.run` keeps it."""
    streams = [_frames(run, backend) for run in runs]
    while streams:
        ticks = [(stream, next(stream, None)) for stream in streams]
        streams = [stream for stream, item in ticks if item is not None]
        items = [item for _, item in ticks if item is not None]
        if not items:
            return
        results = backend.dream_many([(sequence, work) for _, _, sequence, work in items], progress)
        for (run, entry, _, _), (dreamed, state) in zip(items, results):
            if run.keep(entry, dreamed, state):
                on_written()


def _frames(run: ChunkRun, backend: LocalBackend) -> Iterator[tuple]:
    """A run's frames in order, each with the sequence it continues (a new one a segment)."""
    for segment in run.segments:
        sequence = backend.start(run.restore_for(segment))
        for entry, work in zip(segment.entries, run.works(segment)):
            yield run, entry, sequence, work
    run.finish()
