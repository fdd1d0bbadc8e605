"""Dreaming a chunk of a shot to disk, as the shot planner
(:mod:`dream_core.shot.planner`) says: frames whose written dream is the one
the chain makes now are kept, the rest dreamed; a killed run carries on
from its exact carried state (the same frames an uninterrupted run makes);
seams beside the chunk are cross-faded once both sides are there. Frames
appear atomically, each with its record (:mod:`dream_core.shot.provenance`).

The work of one frame is a *backend*: in this process
(:class:`~dream_core.batch.local.LocalBackend`) or on a dream server
(:class:`~dream_core.batch.remote.RemoteBackend`), both taking the same settings.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

from tqdm import tqdm

from ..config import DreamSettings, Progress, ProgressCallback
from ..errors import BadSetting, DreamError, ShapeMismatch
from ..frame.colour import as_shown, carried_back_to
from ..io import Picture, read_image, write_image
from ..io.images import format_of
from ..shot.frame_plans import FramePlan
from ..shot.planner import Walk, checkpoint_every, plan_chunk, state_to_keep
from ..shot.provenance import START, Digests, FileRecord, Link, Records, chain_settings, digest_of, file_stat


@dataclass(frozen=True)
class Work:
    """One frame for a backend: the picture, its place in the shot (the
    dreamer carries motion only into the next place), whether to send back
    the sequence's carried state after it, and for a seam's frame the other
    chain's output of it and its share (see frame/crossfade.py)."""

    picture: Picture
    frame: int
    keep_state: bool = False
    blend: Optional[tuple[Picture, float]] = None


Dreamed = tuple[Picture, Optional[bytes]]


class Backend(Protocol):
    settings: DreamSettings

    def dream_frames(self, works: Iterable[Work], progress: ProgressCallback,
                     restore: Optional[bytes] = None) -> Iterator[Dreamed]:
        """Dreams ``works`` in order as one sequence, starting from the
        carried state ``restore`` (or afresh), yielding each dream and the
        state asked for."""


@dataclass
class _Entry:
    frame: int
    link: str
    target: Optional[str] = None  # None: dreamed to warm or replay the chain, not written
    keep: Optional[str] = None  # whether its state is kept (see state_to_keep)


@dataclass
class _Segment:
    """Frames dreamed as one sequence, from a kept state (START: afresh)."""

    restore: str
    entries: list[_Entry] = field(default_factory=list)


class ChunkRun:
    """One run over a chunk of ``plans`` (the whole shot, in frame order),
    worked out before any dreaming. The same object is used where the
    dreaming happens beside the files (:func:`run_batch`) and where a Ray
    driver reads and writes for an actor that cannot reach them."""

    def __init__(self, plans: list[FramePlan], params: dict, frames: Optional[tuple[int, int]] = None,
                 preroll: int = 0, fade: int = 0, overwrite: bool = False,
                 records: Optional[Records] = None) -> None:
        """``records``: where the run's records go (default: beside the output)."""
        self.plans = {p.frame: p for p in plans}
        self.place = {p.frame: i for i, p in enumerate(plans, start=1)}  # what the dreamer calls each frame
        self.records = records or Records.beside(os.path.dirname(os.path.abspath(plans[0].target)))
        self.digests = Digests()
        self.chain, self.settings = chain_settings(params), digest_of(params)
        self.overwrite = overwrite
        self.fade = fade
        self._valid: dict[str, bool] = {}
        shot = [p.frame for p in plans]
        first, last = frames if frames is not None else (shot[0], shot[-1])
        probe = plan_chunk(shot, first, last)
        before = probe.before(probe.frames[0])
        start = self._current_link(self.plans[before].target) if before is not None else None
        self.plan = plan_chunk(shot, first, last, preroll=preroll, fade=fade, carries_on=start is not None)
        self.walk = Walk(start or START, self.records.link, self.records.has_state)
        self.start = self.walk.at
        self.replaced_end = self._current_link(self.plans[self.plan.frames[-1]].target)
        self.segments = self._segments()
        self.written = 0
        self._every = 0  # written frames between kept states, from the first frame's size
        self._passing: list[str] = []  # passing states this run kept (see state_to_keep)

    # -- what is on disk
    def target(self, frame: int) -> Optional[str]:
        """Where this run writes ``frame``: its target, a held copy (a seam's first frames), or nowhere."""
        if frame in self.plan.held:
            return self.held_path(frame)
        return self.plans[frame].target if frame in self.plan.frames else None

    def held_path(self, frame: int) -> str:
        name = os.path.basename(self.plans[frame].target)
        if self.plans[frame].shown is not None:  # held as dreamed, as shown: a seam's fade is made there
            name = os.path.splitext(name)[0] + ".png"
        return os.path.join(self.records.root, "held", name)

    def dream_input(self, frame: int) -> Picture:
        """What is dreamed of the frame: its render, or the render as shown."""
        plan = self.plans[frame]
        render = read_image(plan.source)
        if plan.shown is None:
            return render
        try:
            return as_shown(render, read_image(plan.shown))
        except ShapeMismatch as err:
            raise ShapeMismatch(f"{plan.shown}: {err}") from None

    def written_form(self, frame: int, dreamed: Picture, path: str) -> Picture:
        """A dream as ``path`` holds it: an EXR of a dream of the render as
        shown holds the dream carried back to the render's scene light."""
        plan = self.plans[frame]
        if plan.shown is None or format_of(path) != "exr":
            return dreamed
        return carried_back_to(read_image(plan.source), read_image(plan.shown), dreamed)

    def input_record(self, frame: int) -> Optional[list]:
        """What a file record keeps of the frame's input: its render's size
        and time with its digest, so a run again need not read an unchanged
        render. None when the dream acted on the render as shown: that digest
        is of two files, and a run without --shown must not take it for the
        render's alone."""
        plan = self.plans[frame]
        return None if plan.shown is not None else [file_stat(plan.source), self.input_digest(frame)]

    def input_digest(self, frame: int) -> str:
        """The digest of the frame's render as it is now (read once, unless
        the record of its dream says what it was at this size and time),
        and of the render as shown when the dream acts on that."""
        plan = self.plans[frame]
        if plan.shown is not None:
            return digest_of([self._digest(plan.source), self._digest(plan.shown)])
        record = self.records.file(plan.target)
        known = tuple(record.input) if record is not None and record.input else None
        return self._digest(plan.source, known)

    def _digest(self, path: str, known=None) -> str:
        digest = self.digests.of(path, known)
        if digest is None:
            raise DreamError(f"source frame missing: {path}")
        return digest

    def is_current(self, made: Link) -> bool:
        return made.frame in self.plans and made.chain == self.chain and made.input == self.input_digest(made.frame)

    def chain_is_current(self, link_id: Optional[str]) -> bool:
        return link_id is not None and self.records.chain_is_current(link_id, self.is_current, self._valid)

    def _current_link(self, path: str) -> Optional[str]:
        """The link of the file at ``path`` when it is a dream (or a seam's
        blend) of the renders and settings as they are now, whoever made it."""
        record = None if self.overwrite else self.records.file(path)
        if record is None or record.settings != self.settings or not self.chain_is_current(record.link):
            return None
        before = record.extra.get("before")
        return record.link if before is None or self.chain_is_current(before) else None

    # -- the plan
    def _segments(self) -> list[_Segment]:
        walk = self.walk
        segments: list[_Segment] = []
        for frame in self.plan.order:
            target = self.target(frame)
            kept = self._current_link(target) if target is not None else None
            if kept is not None and not walk.continues(kept, self.records.file(target).extra.get("before")):
                kept = None  # current, but another chain than the frame before's: a jump
            step = walk.visit(frame, self.chain, self.input_digest(frame), kept, wanted=target is not None)
            if step.action == "keep":
                continue
            if step.restore is not None:
                segments.append(_Segment(step.restore, [_Entry(m.frame, m.id) for m in step.replay]))
            segments[-1].entries.append(_Entry(frame, step.link, target))
        last = self.plan.frames[-1]
        if self.plan.seam_after is not None and not self.records.has_state(walk.at) \
                and not any(e.frame == last for s in segments for e in s.entries):
            restore, replay = walk.recovery(walk.at)  # the chunk after needs this chain's end: make it again
            segments.append(_Segment(restore, [_Entry(m.frame, m.id) for m in replay]))
        self.end = walk.at
        return segments

    @property
    def skipped(self) -> int:
        return len(self.skipped_frames)

    @property
    def skipped_frames(self) -> set[int]:
        """The chunk's frames this run does not write (current already; a
        held one may still be written by its seam's merge)."""
        return set(self.plan.frames) - {e.frame for s in self.segments for e in s.entries if e.target is not None}

    # -- carrying it out
    def restore_for(self, segment: _Segment) -> Optional[bytes]:
        """The carried state a segment starts from (None: afresh)."""
        return self.records.start_state(segment.restore)

    def works(self, segment: _Segment) -> Iterator[Work]:
        """A segment's frames for a backend, read lazily (it may read ahead)."""
        for entry in segment.entries:
            picture = self.dream_input(entry.frame)
            self._every = self._every or checkpoint_every(picture.height * picture.width)
            keep = state_to_keep(self.place[entry.frame], self._every, last=entry.link == self.end)
            entry.keep = keep
            yield Work(picture, self.place[entry.frame], keep is not None)

    def keep(self, entry: _Entry, dreamed: Picture, state: Optional[bytes]) -> bool:
        """Stores one result: its link, the written frame and its record, the
        state; True when it was a frame of the chunk written under its name."""
        self.records.add_link(self.walk.link(entry.link))
        written = False
        if entry.target is not None:
            write_image(entry.target, self.written_form(entry.frame, dreamed, entry.target))
            held = entry.frame in self.plan.held
            self.records.write_file(entry.target, FileRecord(
                "held" if held else "dream", self.settings, entry.link, entry.frame, self.input_record(entry.frame),
                extra={"of": len(self.plan.held)} if held else {}))
            written = not held
            self.written += written
        if state is not None:
            self.records.keep_state(entry.link, state)
            for older in self._passing:  # a newer state supersedes them (they are large)
                self.records.drop_state(older)
            self._passing = [entry.link] if entry.keep == "passing" else []
        return written

    def finish(self) -> None:
        """Drops the passing states a finished run no longer needs (a killed
        run carried on from them) and the end state of the chain it replaced."""
        for link_id in {s.restore for s in self.segments} | set(self._passing) | {self.replaced_end}:
            made = self.walk.link(link_id) if link_id not in (None, START, self.start, self.end) else None
            if made is not None and state_to_keep(self.place.get(made.frame, 0), self._every or 1) != "lasting":
                self.records.drop_state(link_id)

    def run(self, dream_segment: "DreamSegment", on_written: Callable[[], None] = lambda: None) -> None:
        """Dreams every segment through ``dream_segment(works, restore)``,
        writing frames and their records as they come."""
        for segment in self.segments:
            results = dream_segment(self.works(segment), self.restore_for(segment))
            for entry, (dreamed, state) in zip(segment.entries, results):
                if self.keep(entry, dreamed, state):
                    on_written()
        self.finish()


DreamSegment = Callable[[Iterable[Work], Optional[bytes]], Iterator[Dreamed]]


def provenance_params(settings: DreamSettings) -> dict:
    """The settings as a run's records know them: the wire params, and the
    digests of the files they name (a guide, a mask, weights), so an edited
    file is a changed setting."""
    params = settings.to_params()
    digests = Digests()
    for name, path in (("guide", settings.guide), ("mask", settings.mask), ("weights", settings.weights)):
        if path and os.path.isfile(path):
            params[f"{name}_file"] = digests.of(path)
    return params


class ProgressBars:
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


@dataclass(frozen=True)
class BatchResult:
    done: int  # frames written (seams cross-faded included)
    skipped: int  # frames already as this run would make them (none of them counted in ``done`` too)
    waiting: tuple[int, ...] = ()  # a seam's first frames, written once the chunk before has left its chain


def refuse_all_held(plans: list[FramePlan], frames: Optional[tuple[int, int]], fade: int) -> None:
    """A chunk run on its own (``dream --frames``, one process a chunk, as a
    farm runs them) whose every frame waits for the chunk before (``fade`` at
    least its length) while a chunk follows it: the seam after would have
    nothing of this chain to blend, and, the chunks run in another order, its
    frames were never written. Refused before anything is dreamed, whether or
    not the chunk before has been dreamed yet (the same chunk, the same
    answer). Ray and --lockstep dream every chunk of the shot in one run and
    merge every seam themselves: not refused there."""
    if frames is None or fade <= 0:
        return
    plan = plan_chunk([p.frame for p in plans], *frames, fade=fade)
    if plan.strands_a_seam:
        raise BadSetting(f"--fade {fade} must be shorter than every chunk but the shot's last; frames "
                         f"{plan.frames[0]}-{plan.frames[-1]} are {len(plan.frames)}: lower --fade or dream longer "
                         "chunks")


def run_batch(plans: list[FramePlan], backend: Backend, *, overwrite: bool = False, quiet: bool = False,
              frames: Optional[tuple[int, int]] = None, preroll: int = 0, fade: int = 0,
              params: Optional[dict] = None, records: Optional[Records] = None) -> BatchResult:
    """Dreams each plan's source into its target (see :class:`ChunkRun`).
    ``frames`` limits the run to a chunk of the sequence; ``preroll`` and
    ``fade`` apply where it cannot carry on from the chunk before.
    ``params``: the settings as the records know them (default: the
    backend's, see :func:`provenance_params`); ``records``: where they go
    (default: beside the output)."""
    from .seams import merge_seams

    params = params if params is not None else provenance_params(backend.settings)
    run = ChunkRun(plans, params, frames, preroll, fade, overwrite, records)
    bars = ProgressBars(len(run.plan.frames), run.skipped, quiet)
    try:
        def dream(works: Iterable[Work], restore: Optional[bytes]) -> Iterator[Dreamed]:
            return backend.dream_frames(works, bars.progress, restore)

        run.run(dream, lambda: bars.frames.update(1))
        merged, waiting = merge_seams(run, dream)
        bars.frames.update(len(merged))
    finally:
        bars.close()
    return BatchResult(run.written + len(merged), len(run.skipped_frames - set(merged)), waiting)
