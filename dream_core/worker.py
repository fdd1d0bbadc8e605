"""The one thread that owns the device. Connections hand it decoded frames
as :class:`Task` objects and read its events; it never touches a socket, so
no client can stall it."""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .api import alpha_strength, dream_sequence_frame, resume_previous
from .engine import Dreamer, Progress, resolve_device
from .io import Picture
from .models import list_models, model_info
from .protocol import ProtocolError
from .settings import DreamSettings
from .temporal import Previous

log = logging.getLogger("dream_core.server")


class Cancelled(Exception):
    pass


@dataclass(eq=False)  # a task is itself: compared by identity (its fields hold arrays)
class Task:
    """One frame to dream; ``events`` carries ("progress", Progress),
    then ("result", Picture) or ("error", code, message)."""

    settings: DreamSettings
    picture: Picture
    job: Optional[str] = None
    frame: Optional[int] = None
    mask: Optional[np.ndarray] = None
    guide: Optional[np.ndarray] = None
    reply_format: str = "png"  # the result's format unless the request names one
    resume: Optional[tuple[Picture, Picture]] = None  # the previous frame's render and dream, from the client
    events: "queue.Queue[tuple]" = field(default_factory=queue.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class JobState:
    """What a sequence carries from frame to frame."""

    last_frame: Optional[int] = None
    previous: Optional[Previous] = None
    touched: float = field(default_factory=time.monotonic)


class Worker:
    def __init__(self, device: str = "auto", job_idle_timeout: float = 600.0) -> None:
        self.device = device
        self.job_idle_timeout = job_idle_timeout
        self.dreamers: dict[tuple, Dreamer] = {}
        self.jobs: dict[str, JobState] = {}
        self.pending: list[Task] = []
        self.lock = threading.Lock()
        self.queue: "queue.Queue[Optional[Task]]" = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="dream-worker", daemon=True)
        self.thread.start()

    # --- called from connection threads ------------------------------------

    def submit(self, task: Task) -> None:
        with self.lock:
            self.pending.append(task)
        self.queue.put(task)

    def queue_position(self, task: Task) -> int:
        with self.lock:
            return self.pending.index(task) if task in self.pending else 0

    def cancel_job(self, job: str) -> int:
        with self.lock:
            hits = [t for t in self.pending if t.job == job]
        for task in hits:
            task.cancel.set()
        return len(hits)

    def close_job(self, job: str) -> bool:
        with self.lock:
            return self.jobs.pop(job, None) is not None

    def stop(self) -> None:
        self.queue.put(None)

    def dreamer(self, model: str, weights: Optional[str]) -> Dreamer:
        key = (model, weights)
        if key not in self.dreamers:
            log.info("loading model %s on %s", model, self.device)
            self.dreamers[key] = Dreamer(model, weights=weights, device=self.device)
        return self.dreamers[key]

    def info(self) -> dict:
        device = torch.device(self.dreamer_device())
        gpu = {}
        if device.type == "cuda":
            props = torch.cuda.get_device_properties(device)
            gpu = {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1)}
        models = [{"name": n, "layers": list(model_info(n).layers), "default_layer": model_info(n).default_layer,
                   "offline": model_info(n).weights_offline(),
                   "loaded": any(k[0] == n for k in self.dreamers)} for n in list_models()]
        return {"device": str(device), **gpu, "models": models, "jobs": len(self.jobs)}

    def dreamer_device(self) -> str:
        return str(resolve_device(self.device))

    # --- the device thread ---------------------------------------------------

    def _loop(self) -> None:
        while True:
            try:
                task = self.queue.get(timeout=5.0)
            except queue.Empty:
                self._forget_idle_jobs()
                continue
            if task is None:
                return
            try:
                self._run(task)
            finally:
                with self.lock:
                    if task in self.pending:
                        self.pending.remove(task)
            self._forget_idle_jobs()

    def _forget_idle_jobs(self) -> None:
        now = time.monotonic()
        with self.lock:
            for job in [j for j, s in self.jobs.items() if now - s.touched > self.job_idle_timeout]:
                log.info("job %s idle for %.0f s, freed", job, self.job_idle_timeout)
                del self.jobs[job]

    def _run(self, task: Task) -> None:
        if task.cancel.is_set():
            task.events.put(("error", "cancelled", "cancelled before it started"))
            return
        try:
            picture = self._dream(task)
        except ProtocolError as err:
            task.events.put(("error", err.code, err.message))
        except Cancelled:
            task.events.put(("error", "cancelled", "cancelled by the client"))
        except torch.cuda.OutOfMemoryError:
            self._free_memory()
            task.events.put(("error", "out_of_memory", "the GPU ran out of memory; the server freed it and "
                             "is still up. Retry with a smaller tile size (e.g. tile 256)"))
        except Exception as err:  # the worker must outlive any frame
            log.exception("frame failed")
            task.events.put(("error", "internal", f"{type(err).__name__}: {err}"))
        else:
            task.events.put(("result", picture))

    def _free_memory(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _dream(self, task: Task) -> Picture:
        s = task.settings
        try:
            model_info(s.model)
        except KeyError as err:
            raise ProtocolError("unknown_model", err.args[0]) from None
        dreamer = self.dreamer(s.model, s.weights)
        try:
            objective = dreamer.objective(s.layer_for(dreamer.info.layers), s.channels, task.guide)
        except ValueError as err:
            code = "unknown_layer" if "has no layer" in str(err) else "bad_params"
            raise ProtocolError(code, str(err)) from None
        strength = task.mask if task.mask is not None else (
            alpha_strength(task.picture.pixels) if s.mask == "alpha" else None)

        def progress(p: Progress) -> None:
            if task.cancel.is_set():
                raise Cancelled()
            task.events.put(("progress", p))

        state = None
        if task.job:
            with self.lock:
                state = self.jobs.setdefault(task.job, JobState())
                state.touched = time.monotonic()
        previous = state.previous if state is not None and _follows(state.last_frame, task.frame) else None
        if previous is None and task.resume is not None and s.temporal != "none":
            try:
                previous = resume_previous(dreamer, *task.resume)
            except ValueError as err:
                raise ProtocolError("shape_mismatch", str(err)) from None
        try:
            result, carried = dream_sequence_frame(
                dreamer, task.picture, objective, s.config, mode=s.temporal, previous=previous,
                strength=strength, keep_colors=s.keep_colors, mix=s.strength, callback=progress)
        except ValueError as err:
            text = str(err)
            code = "too_small" if "at least" in text else "nonfinite" if "NaN" in text else "bad_params"
            raise ProtocolError(code, text) from None
        if state is not None:
            with self.lock:
                state.last_frame, state.previous, state.touched = task.frame, carried, time.monotonic()
        return result


def _follows(last: Optional[int], frame: Optional[int]) -> bool:
    """Motion is carried only into the next frame of a sequence (or when frames are unnumbered)."""
    return last is None or frame is None or frame == last + 1
