"""A shot's chunks on Ray (``dream --ray [ADDRESS]``, ``pip install
dream-renders[ray]``): one actor per GPU (``num_gpus=1``), or one per CPU
where there is no GPU, each keeping a model loaded across the chunks it
takes. Every chunk is a :class:`~dream_core.batch.run.ChunkRun`, as with
``dream --frames``: finished frames are skipped (a second run resumes), a
chunk whose frame before is on disk carries on from it, the others warm up
with a pre-roll and cross-fade into the chunk before.

An actor that reaches the input and output folders (shared storage: the
driver asks each one at the start) runs its chunks there by itself. For one
that does not, the driver reads the frames, sends them one by one and
writes the dreams that come back. A lost actor is restarted and its chunk
retried; Ctrl+C stops every actor.
"""
from __future__ import annotations

import os
import secrets
import sys
from collections import deque
from typing import Optional

from tqdm import tqdm

from ..config import DreamSettings
from ..shot.frame_plans import FramePlan
from ..shot.provenance import Records
from .run import ChunkRun, Dreamed, Work, provenance_params
from .seams import merge_seams

RETRIES = 2  # a chunk whose actor died is tried again this many times (on a restarted actor)
AHEAD = 2  # frames sent ahead to an actor the driver feeds, so it never waits for the next one


def chunk_ranges(plans: list[FramePlan], size: int) -> list[tuple[int, int]]:
    """The sequence in chunks of ``size`` frames, as (first, last) frame numbers."""
    return [(plans[i].frame, plans[min(i + size, len(plans)) - 1].frame) for i in range(0, len(plans), size)]


class ChunkDreamer:
    """A Ray actor: a model kept loaded, dreaming whole chunks in the shared
    folder, or frame by frame what the driver sends."""

    def __init__(self, params: dict, device: str, images: Optional[tuple] = None) -> None:
        from .local import LocalBackend

        self.backend = LocalBackend(DreamSettings.from_params(params), device=device, images=images)
        self.sequence = None

    def params(self) -> dict:
        return self.backend.settings.to_params()

    def reaches(self, probe: str, token: str, source: str, size: int) -> bool:
        return sees_files(probe, token, source, size)

    def dream(self, plans: list[FramePlan], frames: tuple[int, int], preroll: int, fade: int, params: dict) -> int:
        from .run import run_batch

        return run_batch(plans, self.backend, quiet=True, frames=frames, preroll=preroll, fade=fade,
                         params=params).done

    def start(self, restore: Optional[bytes]) -> None:
        self.sequence = self.backend.start(restore)

    def dream_next(self, work: Work) -> Dreamed:
        if self.sequence is None:  # restarted since start(): the chain is gone, the driver starts the chunk again
            raise ChainLost("this actor was restarted in the middle of a chunk")
        return self.backend.dream_next(self.sequence, work)


def sees_files(probe: str, token: str, source: str, size: int) -> bool:
    """Whether this machine sees the driver's output folder (the probe file the
    driver wrote there, with its token) and input (the first frame, the same size)."""
    try:
        with open(probe, encoding="ascii") as f:
            return f.read() == token and os.path.getsize(source) == size
    except OSError:
        return False


class ChainLost(RuntimeError):
    """An actor lost the sequence it was dreaming (it died and was restarted)."""


def actor_count(resources: dict, wanted: Optional[int]) -> tuple[int, dict]:
    """How many actors, and what each asks Ray for: a GPU each, else a CPU each."""
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return (min(wanted, gpus) if wanted else gpus), {"num_gpus": 1}
    cpus = max(1, int(resources.get("CPU", 1)))
    return (min(wanted, cpus) if wanted else cpus), {"num_cpus": 1}


def dream_on_ray(plans: list[FramePlan], settings: DreamSettings, *, address: Optional[str], chunk_size: int,
                 preroll: int, fade: int, device: str = "auto", actors: Optional[int] = None,
                 io: str = "auto", quiet: bool = False) -> tuple[int, int]:
    """Dreams ``plans`` in chunks on Ray; returns (done, skipped). ``io``:
    ``auto`` asks each actor whether it reaches the files, ``shared`` assumes
    all do, ``driver`` has the driver read and write every frame. Connects
    to Ray at ``address`` (a local cluster of its own when empty) and shuts
    it down after, unless the caller is connected already (then ``address``
    is not used: the caller's Ray is, and it stays up)."""
    import ray

    from .local import guide_and_mask

    images = guide_and_mask(settings)  # read here: an actor on another machine may not reach them
    ours = not ray.is_initialized()  # a caller's own Ray session is used as it is, and left running
    if ours:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        count, resources = actor_count(ray.cluster_resources(), actors)
        remote = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES, **resources)(ChunkDreamer)
        pool = [remote.remote(settings.to_params(), "cuda" if "num_gpus" in resources else device, images)
                for _ in range(count)]
        shared = reaching(ray, pool, plans) if io == "auto" else {a: io == "shared" for a in pool}
        if not quiet:
            through = sum(not s for s in shared.values())
            print(f"{count} Ray actor(s): {count - through} in the shared folders, {through} through this command",
                  file=sys.stderr)
        return _run_chunks(ray, pool, plans, chunk_size, preroll, fade, quiet, shared, provenance_params(settings))
    except KeyboardInterrupt:
        print("\nstopping the Ray actors", file=sys.stderr)
        raise
    finally:
        if ours:
            ray.shutdown()


def reaching(ray, pool: list, plans: list[FramePlan]) -> dict:
    """Each actor: whether it reaches the input and output folders."""
    out_dir = os.path.dirname(plans[0].target)
    os.makedirs(out_dir, exist_ok=True)
    token = secrets.token_hex(16)
    probe = os.path.join(out_dir, f".ray_probe_{token[:8]}")
    with open(probe, "w", encoding="ascii") as f:
        f.write(token)
    try:
        size = os.path.getsize(plans[0].source)
        answers = ray.get([actor.reaches.remote(probe, token, plans[0].source, size) for actor in pool])
    finally:
        os.remove(probe)
    return dict(zip(pool, answers))


class _Written:
    """The frames this run has written, counted from their records (a chunk
    retried after its actor died wrote some frames in each life; a seam's
    frames are written by whichever chunk beside it ends second)."""

    def __init__(self, plans: list[FramePlan]) -> None:
        self.targets = [p.target for p in plans]
        self.records = Records.beside(os.path.dirname(os.path.abspath(self.targets[0])))
        self.before = {t: self._made(t) for t in self.targets}

    def _made(self, target: str):
        record = self.records.file(target)
        return None if record is None else (record.made, record.link, tuple(record.output))

    def count(self) -> int:
        return sum(self._made(t) not in (None, self.before[t]) for t in self.targets)


class _OnShared:
    """A chunk an actor dreams in the shared folder by itself: one call."""

    def __init__(self, actor, plans: list[FramePlan], chunk: tuple[int, int], preroll: int, fade: int,
                 params: dict) -> None:
        self.ref = actor.dream.remote(plans, chunk, preroll, fade, params)

    def waiting(self):
        return self.ref

    def take(self, ray) -> bool:
        ray.get(self.ref)  # a chunk's error (a bad frame) ends the run here, with its message
        return True


class _ThroughDriver:
    """A chunk the driver reads and writes for an actor that cannot reach the
    files: frames go one call each, a few ahead, and come back in order; a
    segment that starts from a carried state first sends it to the actor."""

    def __init__(self, actor, plans: list[FramePlan], chunk: tuple[int, int], preroll: int, fade: int,
                 params: dict) -> None:
        self.actor = actor
        self.run = ChunkRun(plans, params, chunk, preroll, fade)
        self.calls = self._calls()
        self.sent: deque = deque()  # (entry, result ref) in order
        self.started = None
        self._send()

    def _calls(self):
        for segment in self.run.segments:
            self.started = self.actor.start.remote(self.run.restore_for(segment))
            for entry, work in zip(segment.entries, self.run.works(segment)):
                # no retry on a restarted actor: its chain is gone, so the whole chunk starts again
                yield entry, self.actor.dream_next.options(max_task_retries=0).remote(work)

    def _send(self) -> None:
        while len(self.sent) < AHEAD:
            call = next(self.calls, None)
            if call is None:
                return
            self.sent.append(call)

    def waiting(self):
        return self.sent[0][1] if self.sent else self.started  # nothing left to dream: done once started

    def take(self, ray) -> bool:
        """Stores the next result; True once the chunk is done."""
        if self.sent:
            entry, ref = self.sent.popleft()
            self.run.keep(entry, *ray.get(ref))
            self._send()
        if self.sent:
            return False
        self.run.finish()
        merge_seams(self.run, self._dream_here)
        return True

    def _dream_here(self, works, restore: Optional[bytes]):
        """A seam's frames, one call at a time (a few frames, once per seam)."""
        from ray import get

        get(self.actor.start.remote(restore))
        for work in works:
            yield get(self.actor.dream_next.remote(work))


def _run_chunks(ray, pool, plans, chunk_size: int, preroll: int, fade: int, quiet: bool,
                shared: Optional[dict] = None, params: Optional[dict] = None) -> tuple[int, int]:
    """Hands chunks to idle actors in shot order; the bar counts frames as they are written."""
    from ray.exceptions import RayActorError, RayTaskError

    shared = shared if shared is not None else {actor: True for actor in pool}
    params = params if params is not None else provenance_params(DreamSettings.from_params(
        ray.get(pool[0].params.remote())))
    pending = deque(chunk_ranges(plans, chunk_size))
    jobs: dict = {}  # actor -> (job, chunk)
    failures: dict = {}  # chunk -> times its actor was lost
    written = _Written(plans)
    with tqdm(total=len(plans), unit="frame", desc="frames", disable=quiet) as bar:
        idle = deque(pool)
        while pending or jobs:
            while idle and pending:
                actor, chunk = idle.popleft(), pending.popleft()
                job = (_OnShared if shared[actor] else _ThroughDriver)(actor, plans, chunk, preroll, fade, params)
                jobs[actor] = (job, chunk)
            waiting = {job.waiting(): actor for actor, (job, _) in jobs.items()}
            ready, _ = ray.wait(list(waiting), num_returns=1)
            actor = waiting[ready[0]]
            job, chunk = jobs[actor]
            try:
                finished = job.take(ray)
            except (RayActorError, RayTaskError) as error:
                if isinstance(error, RayTaskError) and not isinstance(error.as_instanceof_cause(), ChainLost):
                    raise
                failures[chunk] = failures.get(chunk, 0) + 1
                if failures[chunk] > RETRIES:
                    raise
                finished = True
                pending.appendleft(chunk)  # frames it wrote are kept; it carries on from its kept state
            bar.n = written.count()
            bar.refresh()
            if finished:
                del jobs[actor]
                idle.append(actor)
    done = written.count()
    return done, len(plans) - done
