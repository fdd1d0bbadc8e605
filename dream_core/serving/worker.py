"""The one thread that owns the device. Connections hand it decoded frames
as :class:`FrameTask` objects and read its events; it never touches a
socket, so no client can stall it."""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional, Union

import torch

from ..config import Progress
from ..engine import Dreamer, resolve_device
from ..engine.compiling import CompileCache
from ..engine.device import describe
from ..engine.dreamer import is_out_of_memory
from ..errors import DreamError, JobLost
from ..frame.pipeline import SequenceDreamer, follows
from ..models import list_models, model_info
from .live_sessions import LiveSessions, LiveTask, run_live
from .tasks import ErrorEvent, FrameTask, PrepareTask, ProgressEvent, ResultEvent, StateSnapshot

log = logging.getLogger("dream_core.server")

IDLE_CHECK_SECONDS = 5.0
FREED_REMEMBERED = 1024  # freed job ids kept, so their next frame is refused instead of dreamed without its past


@dataclass(frozen=True)
class Capacity:
    """What one server holds for its clients: carried jobs (each a frame's
    worth of tensors or more) and loaded models. Past a cap the least
    recently used goes."""

    jobs_per_connection: int = 16
    jobs: int = 64
    models: int = 2
    model_bytes: int = 4 << 30  # parameters and buffers of the models loaded, together


class _StopDreaming(Exception):
    """Raised from the progress callback: the client cancelled the frame."""


@dataclass(frozen=True)
class Freed:
    """A job the server let go: why, and what the next frame would have carried from."""

    why: str
    carried: bool  # it had a frame to carry into the next
    last_frame: Optional[int]


@dataclass
class JobState:
    """A job is a sequence: its carried state, and when it was last used."""

    sequence: SequenceDreamer = field(default_factory=SequenceDreamer)
    touched: float = field(default_factory=time.monotonic)


class Worker:
    def __init__(self, device: str = "auto", job_idle_timeout: float = 600.0,
                 capacity: Capacity = Capacity(), compile_cache: Optional[CompileCache] = None) -> None:
        self.device = device
        self.compile_cache = compile_cache  # where compiled engines are kept for the next start
        self.job_idle_timeout = job_idle_timeout
        self.capacity = capacity
        self.dreamers: "OrderedDict[tuple, Dreamer]" = OrderedDict()  # least recently used first
        self.jobs: "OrderedDict[tuple[int, str], JobState]" = OrderedDict()  # by (connection, job id), same order
        self.freed: "OrderedDict[tuple[int, str], Freed]" = OrderedDict()  # jobs the server let go
        self.live = LiveSessions()  # live views' sessions (serving/live_sessions.py)
        self.pending: list[Union[FrameTask, LiveTask]] = []
        self.lock = threading.Lock()
        self.queue: "queue.Queue[Union[FrameTask, LiveTask, PrepareTask, None]]" = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="dream-worker", daemon=True)
        self.thread.start()

    # --- called from connection threads ------------------------------------

    def submit(self, task: Union[FrameTask, LiveTask]) -> None:
        if isinstance(task, LiveTask):
            self.live.submit(task)  # the session's newest: older ones waiting are let go
        with self.lock:
            self.pending.append(task)
        self.queue.put(task)

    def prepare(self, task: PrepareTask) -> None:
        """Queued behind the frames already sent: the device thread loads and builds, nothing waits for it."""
        self.queue.put(task)

    def queue_position(self, task: FrameTask) -> int:
        """0 while running (or done), else how many frames are ahead of it."""
        with self.lock:
            return self.pending.index(task) if task in self.pending else 0

    def cancel_job(self, owner: int, job: str) -> int:
        with self.lock:
            hits = [t for t in self.pending if t.owner == owner and t.job == job]
        for task in hits:
            task.cancel.set()
        return len(hits)

    def close_job(self, owner: int, job: str) -> bool:
        """Lets a job, or a live session of that id, go."""
        live = self.live.close(owner, job)
        with self.lock:
            return self.jobs.pop((owner, job), None) is not None or live

    def close_owner(self, owner: int) -> None:
        """A connection closed: its jobs' state is nobody's any more."""
        self.live.close_owner(owner)
        with self.lock:
            for key in [k for k in self.jobs if k[0] == owner]:
                del self.jobs[key]
            for key in [k for k in self.freed if k[0] == owner]:
                del self.freed[key]

    def stop(self) -> None:
        self.queue.put(None)

    def dreamer(self, model: str, weights: Optional[str]) -> Dreamer:
        """The loaded model (loading it, and unloading the least recently used past the caps)."""
        key = (model, weights)
        if key in self.dreamers:
            self.dreamers.move_to_end(key)
            return self.dreamers[key]
        log.info("loading model %s on %s", model, self.dreamer_device())
        self.dreamers[key] = Dreamer(model, weights=weights, device=self.device,
                                     on_compiled=self.compile_cache.save if self.compile_cache else None)
        while len(self.dreamers) > 1 and (len(self.dreamers) > self.capacity.models or
                                          sum(map(_model_bytes, self.dreamers.values())) > self.capacity.model_bytes):
            (old_model, old_weights), _ = self.dreamers.popitem(last=False)
            log.info("unloading model %s (%s): over the server's caps", old_model, old_weights)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return self.dreamers[key]

    def info(self) -> dict:
        device = torch.device(self.dreamer_device())
        loaded = list(self.dreamers)  # one snapshot: the worker thread loads and unloads meanwhile
        models = [{"name": n, "layers": list(model_info(n).layers), "default_layer": model_info(n).default_layer,
                   "description": model_info(n).description, "offline": model_info(n).weights_offline(),
                   "loaded": any(k[0] == n for k in loaded)} for n in list_models()]
        compiling = sum(d.builder.pending() for d in list(self.dreamers.values()))
        return {"device": str(device), "device_info": describe(device), "models": models, "jobs": len(self.jobs),
                "compiling": compiling}

    def dreamer_device(self) -> str:
        return str(resolve_device(self.device))

    # --- the device thread ---------------------------------------------------

    def _loop(self) -> None:
        while True:
            try:
                task = self.queue.get(timeout=IDLE_CHECK_SECONDS)
            except queue.Empty:
                self._forget_idle_jobs()
                continue
            if task is None:
                return
            if isinstance(task, PrepareTask):
                self._prepare(task)
                continue
            try:
                task.events.put(self._outcome(task))
            finally:
                with self.lock:
                    if task in self.pending:
                        self.pending.remove(task)
            self._forget_idle_jobs()

    def _prepare(self, task: PrepareTask) -> None:
        """Loads the model and starts building its compiled engines for the
        size; a failure here is only logged (the frames will say it)."""
        settings = task.settings
        try:
            dreamer = self.dreamer(settings.model, settings.weights)
            objective = dreamer.objective(settings.layer_for(dreamer.info.layers), settings.channels)
            shapes = dreamer.prepare(objective, task.height, task.width, settings.config)
            log.info("prepared %s for %dx%d frames: %d shapes to compile", settings.model, task.width, task.height,
                     shapes)
        except Exception as err:
            log.warning("could not prepare for %dx%d frames: %s", task.width, task.height, err)

    def _forget_idle_jobs(self) -> None:
        self.live.forget_idle(self.job_idle_timeout)
        now = time.monotonic()
        with self.lock:
            for job in [j for j, s in self.jobs.items() if now - s.touched > self.job_idle_timeout]:
                log.info("job %s idle for %.0f s, freed", job, self.job_idle_timeout)
                self._free(job, f"idle for more than {self.job_idle_timeout:g} s")

    def _outcome(self, task: FrameTask):
        """The task's final event: its result or why there is none."""
        if task.cancel.is_set():
            return ErrorEvent("cancelled", "cancelled before it started")
        try:
            if isinstance(task, LiveTask):
                return run_live(self.live, task, self.dreamer(task.settings.model, task.settings.weights))
            return self._dream(task)
        except DreamError as err:
            return ErrorEvent(err.code, str(err))
        except _StopDreaming:
            return ErrorEvent("cancelled", "cancelled by the client")
        except Exception as err:  # the worker must outlive any frame
            if is_out_of_memory(err):
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                return ErrorEvent("out_of_memory", f"the {self.dreamer_device()} device ran out of memory even in "
                                  f"{Dreamer.MIN_TILE} px tiles; the server freed it and is still up. Dream a smaller "
                                  "frame, or free the device's memory")
            log.exception("frame failed")
            return ErrorEvent("internal", f"{type(err).__name__}: {err}")

    def _dream(self, task: FrameTask) -> ResultEvent:
        settings = task.settings
        model_info(settings.model)  # UnknownModel before anything loads
        dreamer = self.dreamer(settings.model, settings.weights)

        def progress(p: Progress) -> None:
            if task.cancel.is_set():
                raise _StopDreaming()
            task.events.put(ProgressEvent(p))

        carries = settings.temporal != "none" and task.state is None and task.resume is None
        state = self._job_state(task.owner, task.job, task.frame, needs_past=carries)
        sequence = state.sequence
        if settings.temporal != "none" and sequence.needs_resume(task.frame):
            if task.state is not None:
                sequence.restore(task.state, dreamer.device)
            elif task.resume is not None:
                sequence.resume(dreamer, *task.resume)
        result = sequence.dream(dreamer, task.picture, settings, frame=task.frame, mask=task.mask,
                                guide=task.guide, callback=progress, blend=task.blend)
        state.touched = time.monotonic()
        carried = sequence.previous is not None and task.send_state  # encoded by the relay, not here
        return ResultEvent(result, StateSnapshot(sequence.previous, sequence.last_frame) if carried else None)

    def _job_state(self, owner: int, job: Optional[str], frame: Optional[int], needs_past: bool) -> JobState:
        """A named job's state (kept between frames), or a fresh one for a lone
        frame. A frame of a job the server let go, that would carry its past
        and brings nothing to rebuild it from, is refused: dreamed afresh it
        would break the motion without a word."""
        if job is None:
            return JobState()
        key = (owner, job)
        with self.lock:
            freed = None if key in self.jobs else self.freed.get(key)
            if freed is not None:
                if needs_past and freed.carried and follows(freed.last_frame, frame):
                    raise JobLost(f"the server let job {job!r} go ({freed.why}); dream it again from its "
                                  "start, or send its previous_state")
                del self.freed[key]
            state = self.jobs.setdefault(key, JobState())
            self.jobs.move_to_end(key)
            state.touched = time.monotonic()
            self._keep_within_caps(owner)
            return state

    def _keep_within_caps(self, owner: int) -> None:
        """Lets the least recently used jobs go past the caps (the lock is held)."""
        mine = [k for k in self.jobs if k[0] == owner]
        for key in mine[:max(0, len(mine) - self.capacity.jobs_per_connection)]:
            self._free(key, f"over the cap of {self.capacity.jobs_per_connection} jobs a connection")
        for key in list(self.jobs)[:max(0, len(self.jobs) - self.capacity.jobs)]:
            self._free(key, f"over the server's cap of {self.capacity.jobs} jobs")

    def _free(self, key: tuple[int, str], why: str) -> None:
        sequence = self.jobs.pop(key).sequence
        self.freed[key] = Freed(why, sequence.previous is not None, sequence.last_frame)
        while len(self.freed) > FREED_REMEMBERED:
            self.freed.popitem(last=False)


def _model_bytes(dreamer: Dreamer) -> int:
    return sum(t.numel() * t.element_size() for t in itertools.chain(dreamer.net.parameters(), dreamer.net.buffers()))
