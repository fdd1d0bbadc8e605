"""Cross-fades at chunk seams (see :mod:`dream_core.shot.planner`). Two
chunks dreamed side by side grow different patterns: a chunk that cannot
carry on from the chunk before holds its first ``fade`` dreams aside; once
both are there, whichever ends second carries the chunk before's chain on
over those frames from its exact state and writes each frame once, as a
ramp from that chain into the held one made one pattern again
(:mod:`dream_core.frame.crossfade`, which keeps the dream's strength).
Measured on the pan shot with ``benchmarks/chunks.py``.

Held copies are used only while they are the chain the chunk after carries
on with (a rerun of that chunk with other renders or settings makes new
ones), and a blend is written again only when either chain changed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..io import read_image, write_image
from ..shot.planner import seam_to_merge
from ..shot.provenance import FileRecord

if TYPE_CHECKING:
    from .run import ChunkRun, DreamSegment


def merge_seams(run: "ChunkRun", dream: "DreamSegment") -> tuple[list[int], tuple[int, ...]]:
    """Cross-fades the seams beside ``run``'s chunk that both sides have
    reached; returns the frames written, and this chunk's held frames still
    waiting for the chunk before."""
    merged: list[int] = []
    for seam in (run.plan.seam_before, run.plan.seam_after):
        if seam is not None and run.fade:
            merged += merge(run, seam, dream)
    waiting = tuple(f for f in run.plan.held if not _is_blended(run, f))
    return merged, waiting


def _is_blended(run: "ChunkRun", frame: int) -> bool:
    record = run.records.file(run.plans[frame].target)
    return record is not None and record.made == "blend"


def merge(run: "ChunkRun", seam: int, dream: "DreamSegment") -> list[int]:
    """Writes the faded frames of the seam at ``seam`` when both chains are
    there and the frames are not already their blend; returns them."""
    from .run import Work

    before = run.plan.before(seam)
    end = run._current_link(run.plans[before].target) if before is not None else None
    merge = seam_to_merge(run.records, run.plan.shot, seam, run.fade, end, held_path=run.held_path,
                          written_path=lambda frame: run.plans[frame].target,
                          settings_of=lambda frame: run.settings, is_current=run.is_current)
    if merge is None:
        return []
    replay = [made.frame for made in merge.steps[0].replay]
    works = [Work(run.dream_input(frame), run.place[frame]) for frame in replay]
    works += [Work(run.dream_input(made.frame), run.place[made.frame],
                   blend=(read_image(run.held_path(made.frame)), share))
              for made, share in zip(merge.held, merge.shares)]
    results = dream(iter(works), run.records.start_state(merge.steps[0].restore))
    for _ in replay:
        next(results)
    for made, step, (blended, _) in zip(merge.held, merge.steps, results):
        run.records.add_link(merge.walk.link(step.link))
        target = run.plans[made.frame].target
        write_image(target, run.written_form(made.frame, blended, target))
        run.records.write_file(target, FileRecord("blend", run.settings, made.id, made.frame,
                                                  run.input_record(made.frame), extra={"before": step.link}))
    return [made.frame for made in merge.held]
