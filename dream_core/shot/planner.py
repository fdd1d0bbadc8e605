"""The one shot planner: what to render, warm up, dream, write, keep and
merge for a chunk of a shot, decided from provenance (:mod:`.provenance`).
Standard library only: the CLI's chunks, Ray, Dream on Render and Dream
Animation all carry out what it says, and the Flamenco job type is checked
against the same table of cases (tests/cases/farm_tasks.json).

A shot is dreamed as a *chain*: each frame carries the dream of the one
before. A chunk (a farm task, ``dream --frames``) is part of the shot:

- it *carries on* from the chunk before when that chunk's last frame is
  written, current, and its exact carried state is kept: then it is the very
  shot an uninterrupted run makes;
- otherwise it starts a chain of its own, first dreaming up to ``preroll``
  frames before its start (*warm*, not written) so its first frame is not
  a cold start, and with ``fade`` its first frames are *held*: kept aside,
  and written once, already blended, when the chunk before has left its
  chain's state: whichever of the two ends second dreams the chunk before's
  chain on over those frames (exactly, from its state) and cross-fades it
  into this chunk's (:func:`seam_share`). A rerun finishes every seam its
  chunk is beside; held copies of a chain that is not the chunk's any more
  are not used.

Inside a chain, :class:`Walk` says frame by frame whether the frame on disk
is the one the chain makes now (keep it) or must be dreamed, and what a
fresh dreamer (a new server job, a restarted server or actor) must first
be given to be where the chain is: the latest carried state kept, and the
frames dreamed since, dreamed again and not written (*replay*).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .provenance import START, Link


@dataclass(frozen=True)
class ChunkPlan:
    """The frames of one run over a chunk of a shot."""

    shot: tuple[int, ...]  # every frame of the shot, in order
    frames: tuple[int, ...]  # the chunk's frames, written (or held) by it
    warm: tuple[int, ...] = ()  # pre-roll: dreamed first, never written
    held: tuple[int, ...] = ()  # the first frames after a seam, written by the seam's merge
    seam_before: Optional[int] = None  # this chunk's first frame, when a chunk before it exists
    seam_after: Optional[int] = None  # the next chunk's first frame, when one exists

    @property
    def order(self) -> tuple[int, ...]:
        """The frames in the order they are dreamed."""
        return self.warm + self.frames

    @property
    def strands_a_seam(self) -> bool:
        """Every frame is held for the seam before, and a chunk follows: the
        seam after has nothing of this chain to blend (run on its own, as a
        farm runs chunks, that seam's frames were never written)."""
        return bool(self.held) and len(self.held) == len(self.frames) and self.seam_after is not None

    def before(self, frame: int) -> Optional[int]:
        """The shot's frame before ``frame``, or None at its start."""
        index = self.shot.index(frame)
        return self.shot[index - 1] if index > 0 else None


def plan_chunk(shot: Sequence[int], first: Optional[int] = None, last: Optional[int] = None, *, preroll: int = 0,
               fade: int = 0, carries_on: bool = False) -> ChunkPlan:
    """The plan of the chunk ``first``-``last`` (inclusive; None: the shot's
    ends) of ``shot``. ``carries_on``: the frame before the chunk is written
    with its state kept and current (see :meth:`Walk.carries_on`), so the
    chunk continues that chain: no pre-roll, no seam."""
    if preroll < 0 or fade < 0:
        raise ValueError("pre-roll and fade are 0 or more frames")
    shot = tuple(shot)
    if not shot or list(shot) != sorted(set(shot)):
        raise ValueError("a shot is one or more frames in increasing order")
    first = shot[0] if first is None else first
    last = shot[-1] if last is None else last
    frames = tuple(f for f in shot if first <= f <= last)
    if not frames:
        raise ValueError(f"the shot (frames {shot[0]}-{shot[-1]}) has no frames {first}-{last}")
    earlier = [f for f in shot if f < frames[0]]
    later = [f for f in shot if f > frames[-1]]
    seam_after = later[0] if later else None
    if not earlier or carries_on:
        return ChunkPlan(shot, frames, seam_after=seam_after)
    return ChunkPlan(shot, frames, tuple(earlier[-preroll:]) if preroll else (), frames[:fade], frames[0],
                     seam_after)


def seam_share(index: int, fade: int) -> float:
    """The share of the chunk after a seam in its ``index``-th frame (0: the
    seam's first): a ramp from the chunk before's chain, carried on over the
    fade, to the chunk after's."""
    return (index + 1) / (fade + 1)


def frame_list(text: str) -> list[int]:
    """A frame list such as ``1-100`` or ``5,10-20`` (a farm's frames), sorted, each frame once."""
    frames = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(-?\d+)(?:-(-?\d+))?\s*", part)
        if match is None:
            raise ValueError(f"frames must be like 1-100 or 5,10-20, got {text!r}")
        first_frame, last_frame = int(match.group(1)), int(match.group(2) or match.group(1))
        if last_frame < first_frame:
            raise ValueError(f"frames {part.strip()}: the last is before the first")
        frames.update(range(first_frame, last_frame + 1))
    return sorted(frames)


def farm_tasks(frames: Sequence[int], chunk_size: int, preroll: int) -> list[tuple[int, int, int]]:
    """A shot's frames in farm tasks: (first frame rendered, last frame,
    first frame written) for runs of consecutive frames of at most
    ``chunk_size`` (a gap starts a new run, as Flamenco's frame chunker
    does); each task renders up to ``preroll`` frames before its own, never
    before the shot's first frame."""
    if chunk_size < 1 or preroll < 0:
        raise ValueError("chunks are 1 or more frames, the pre-roll 0 or more")
    frames = sorted(set(frames))
    runs: list[list[int]] = []
    for frame in frames:
        if runs and frame == runs[-1][-1] + 1 and len(runs[-1]) < chunk_size:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    return [(max(frames[0], run[0] - preroll), run[-1], run[0]) for run in runs]


# -- inside a chain

CHECKPOINT_BYTES = 16 << 20  # a carried state is kept about every this many bytes of states
STATE_BYTES_PER_PIXEL = 100  # what a carried state takes (source, dream, detail at twice the size, ...)


LASTING = 16  # one checkpoint in this many stays after its run


def checkpoint_every(pixels: int) -> int:
    """How many frames apart carried states are kept while a run goes on:
    every frame for small frames, about every 13th at 1080p (a state is
    ~200 MB there); a killed run dreams again at most that many frames."""
    return max(1, -(-pixels * STATE_BYTES_PER_PIXEL // CHECKPOINT_BYTES))


def state_to_keep(frame: int, every: int, last: bool = False) -> Optional[str]:
    """Whether the carried state after ``frame`` (its number: every run of a
    shot keeps the same ones) is kept: ``lasting`` (it stays, so an edit later
    in the shot dreams again at most ``LASTING * every`` frames to carry its
    chain there; a chunk's last frame's stays for the chunk after),
    ``passing`` (until a newer one is kept: a killed run carries on from it,
    1 MB a frame on average) or None."""
    if last or frame % (every * LASTING) == 0:
        return "lasting"
    return "passing" if frame % every == 0 else None


@dataclass
class Step:
    """What to do with one frame: ``keep`` the file on disk (or, for a frame
    not written, nothing yet), or ``dream`` it. Before a dream, a fresh
    dreamer is first given ``restore`` (the link of a kept carried state;
    START: begin afresh) and dreams ``replay`` again, unwritten; None: the
    dreamer is already where the chain is."""

    action: str  # "keep" or "dream"
    link: str  # the chain's link after this frame
    restore: Optional[str] = None
    replay: list[Link] = field(default_factory=list)


class Walk:
    """A chain's frames in order, from ``start`` (START, or the link of the
    frame before, written and current). ``lookup(link)`` reads a link's
    record, ``has_state(link)`` says whether its carried state is kept."""

    def __init__(self, start: str = START, lookup=lambda link_id: None, has_state=lambda link_id: False) -> None:
        self.at = start  # the chain's link at the last frame visited
        self.lookup = lookup
        self.has_state = has_state
        self.dreamer: Optional[str] = None  # the link the dreamer's sequence is at; None: a fresh dreamer
        self.made: dict[str, Link] = {}  # the links this walk worked out, by id

    def link(self, link_id: str) -> Optional[Link]:
        return self.made.get(link_id) or self.lookup(link_id)

    def continues(self, link_id: str, before: Optional[str] = None) -> bool:
        """Whether a frame on disk made with ``link_id`` carries on the chain
        where the walk is; a seam's blend (``before``: the chain before the
        seam, carried on over it) carries it on into the chunk after's."""
        for candidate in (link_id, before):
            made = self.link(candidate) if candidate else None
            if made is not None and made.after == self.at:
                return True
        return False

    def visit(self, frame: int, chain: str, input_digest: str, kept: Optional[str] = None,
              wanted: bool = True) -> Step:
        """The next frame. ``kept``: the link of its file on disk, when that
        file is current and :meth:`continues` the chain (the walk then goes on
        from it, whichever chunk made it). A frame that is not ``wanted`` (a
        pre-roll's) is dreamed only if a later one needs the chain there."""
        if kept is not None:
            self.at = kept
            return Step("keep", kept)
        made = Link(frame, chain, input_digest, self.at)
        self.made[made.id] = made
        if not wanted:
            self.at = made.id
            return Step("keep", made.id)
        step = Step("dream", made.id) if self.dreamer == self.at else Step("dream", made.id,
                                                                           *self.recovery(self.at))
        self.at = self.dreamer = made.id
        return step

    def lost(self) -> None:
        """The dreamer lost its sequence (a server or actor restarted): the
        next dream first restores the latest state and replays."""
        self.dreamer = None

    def recovery(self, upto: str) -> tuple[str, list[Link]]:
        """For a fresh dreamer that must be at ``upto``: the nearest kept state
        on that chain (or START) and the links after it, to dream again."""
        replay, link_id = [], upto
        while link_id != START and not self.has_state(link_id):
            made = self.link(link_id)
            if made is None:
                raise LookupError(f"the chain's link {link_id} has no record: it cannot be dreamed again")
            replay.append(made)
            link_id = made.after
        return link_id, replay[::-1]


# -- a seam both sides have reached

@dataclass
class SeamMerge:
    """What a seam's merge dreams: the chunk after's ``held`` dreams (links,
    in frame order) and the chunk before's chain carried on over the same
    frames (``steps``; the first says what a fresh dreamer restores and
    replays; ``walk.link(step.link)`` is each link's record to keep)."""

    held: list[Link]
    steps: list[Step]
    walk: Walk

    @property
    def shares(self) -> list[float]:
        return [seam_share(index, len(self.held)) for index in range(len(self.held))]


def seam_to_merge(records, shot: Sequence[int], seam: int, fade: int, end: Optional[str], *, held_path,
                  written_path, settings_of, is_current) -> Optional[SeamMerge]:
    """The seam at ``seam`` when both sides are there and its frames are not
    already their blend, else None. ``end``: the chunk before's last link,
    when it is written and current; ``held_path(frame)``, ``written_path(frame)``:
    where the chunk after's held dream and the frame's written dream are;
    ``settings_of(frame)``: the settings digest a dream of it must have;
    ``is_current(link)``: whether a link's render and settings are today's."""
    held = _held_chain(records, list(shot), seam, fade, held_path, written_path, settings_of, is_current) \
        if end is not None else []
    if not held:
        return None
    walk = Walk(end, records.link, records.has_state)
    steps = [walk.visit(made.frame, made.chain, made.input) for made in held]
    if all(_blended(records.file(written_path(made.frame)), made.id, step.link, settings_of(made.frame))
           for made, step in zip(held, steps)):
        return None
    return SeamMerge(held, steps, walk)


def _held_chain(records, shot: list[int], seam: int, fade: int, held_path, written_path, settings_of,
                is_current) -> list[Link]:
    """The chunk after's held dreams, when they are all there (its run wrote
    how many it holds), one chain, current, and the chain that chunk carries
    on with (a chunk run again with other renders or settings leaves dead ones)."""
    frames = shot[shot.index(seam):]
    held: list[Link] = []
    count = None
    for frame in frames[:fade]:
        record = records.file(held_path(frame))
        made = records.link(record.link) if record is not None and record.link else None
        if made is None or record.made != "held" or record.settings != settings_of(frame) \
                or (held and made.after != held[-1].id):
            break
        held.append(made)
        count = count or record.extra.get("of")
    if not held or len(held) != count or not records.chain_is_current(held[-1].id, is_current):
        return []
    after = frames[len(held)] if len(held) < len(frames) else None
    record = records.file(written_path(after)) if after is not None else None
    if record is not None and record.made == "dream":
        carried = records.link(record.link) if record.link else None
        if carried is None or carried.after != held[-1].id:
            return []
    return held


def _blended(record, own: str, before: str, settings: str) -> bool:
    return record is not None and record.made == "blend" and record.link == own \
        and record.extra.get("before") == before and record.settings == settings
