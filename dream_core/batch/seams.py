"""Cross-fades at chunk seams (see :mod:`dream_core.wire.shots`). Two
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
from ..wire.provenance import FileRecord, file_stat
from ..wire.shots import Walk, seam_share

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


def held_chain(run: "ChunkRun", seam: int) -> list[tuple[int, str]]:
    """The chunk after ``seam``'s held dreams (frame, link), when they are
    all there, one chain, current, and the chain that chunk carries on with."""
    frames = run.plan.shot[run.plan.shot.index(seam):]
    held: list[tuple[int, str]] = []
    count = None
    for frame in frames[:run.fade]:
        record = run.records.file(run.held_path(frame))
        if record is None or record.made != "held" or record.settings != run.settings or record.link is None:
            break
        made = run.records.link(record.link)
        if made is None or (held and made.after != held[-1][1]):
            return []
        held.append((frame, record.link))
        count = count or record.extra.get("of")
    if not held or len(held) != count or not run.chain_is_current(held[-1][1]):
        return []  # not all dreamed yet (the chunk after was killed, or is running), or stale
    after = frames[len(held)] if len(held) < len(frames) else None
    record = run.records.file(run.plans[after].target) if after is not None else None
    if record is not None and record.made == "dream":
        carried = run.records.link(record.link) if record.link else None
        if carried is None or carried.after != held[-1][1]:
            return []  # the chunk after has carried on with another chain since: these are dead
    return held


def merge(run: "ChunkRun", seam: int, dream: "DreamSegment") -> list[int]:
    """Writes the faded frames of the seam at ``seam`` when both chains are
    there and the frames are not already their blend; returns them."""
    before = run.plan.before(seam)
    end = run._current_link(run.plans[before].target) if before is not None else None
    held = held_chain(run, seam) if end is not None else []
    if not held:
        return []
    walk = Walk(end, run.records.link, run.records.has_state)  # the chain before, carried on over the seam
    steps = [walk.visit(frame, run.chain, run.input_digest(frame)) for frame, _ in held]
    if all(_blend_is_current(run, frame, own, step.link) for (frame, own), step in zip(held, steps)):
        return []
    from .run import Work

    replay = [made.frame for made in steps[0].replay]
    works = [Work(read_image(run.plans[frame].source), run.place[frame]) for frame in replay]
    works += [Work(read_image(run.plans[frame].source), run.place[frame],
                   blend=(read_image(run.held_path(frame)), seam_share(index, len(held))))
              for index, (frame, _) in enumerate(held)]
    results = dream(iter(works), run.records.start_state(steps[0].restore))
    for _ in replay:
        next(results)
    for (frame, own), step, (blended, _) in zip(held, steps, results):
        run.records.add_link(walk.link(step.link))
        target = run.plans[frame].target
        write_image(target, blended)
        run.records.write_file(target, FileRecord("blend", run.settings, own, frame,
                                                  [file_stat(run.plans[frame].source), run.input_digest(frame)],
                                                  extra={"before": step.link}))
    return [frame for frame, _ in held]


def _blend_is_current(run: "ChunkRun", frame: int, own: str, before: str) -> bool:
    record = run.records.file(run.plans[frame].target)
    return (record is not None and record.made == "blend" and record.link == own and record.settings == run.settings
            and record.extra.get("before") == before)
