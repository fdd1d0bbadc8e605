"""The frame scheduler: a :class:`FrameRun` brings every planned frame to a
dreamed file on disk, rendering missing frames on the main thread while a
worker thread dreams finished ones. Operators drive it with :meth:`tick`,
modally (a timer) or blocking (scripts, ``blender --background``)."""
from __future__ import annotations

import os
import queue
import time
from dataclasses import replace
from typing import Optional

import bpy

from . import cache, colour, plans, rendering
from .dreaming import (
    DreamWorker,
    FrameDone,
    FrameFailed,
    FrameProgress,
    Message,
    RunCancelled,
    reply_as_linear,
    reply_as_target,
)
from .errors import DreamError
from .wire.plans import FramePlan, resume_point


class FrameRun:
    """Frames whose dream exists and was made with the settings they would
    get now are skipped (a re-run resumes; changed settings re-dream);
    sources that exist are not rendered again. The scene is looked up by
    name on every tick: a reference held across ticks can be invalidated by
    undo. ``redream`` dreams every frame again."""

    def __init__(self, scene, frame_plans: list[FramePlan], job: str, link, render_missing: bool = True,
                 redream: bool = False, colour_managed: bool = False) -> None:
        """``colour_managed``: the sources are scene-linear renders; their dreams
        are written through the scene's colour management, as Blender writes
        renders (the server replies in EXR, Blender makes the PNG)."""
        self.scene_name = scene.name
        size = plans.output_size(scene)
        self.plans = [replace(p, params=plans.frame_params(scene, p.frame, objects=render_missing))
                      for p in frame_plans]
        self.prints = {p.target: cache.fingerprint(p.params, size) for p in self.plans}
        self.cache = cache.FrameCache()
        self.todo = [p for p in self.plans if redream or not self.cache.reusable(p, self.prints[p.target])]
        self.skipped = len(frame_plans) - len(self.todo)
        self.render_missing = render_missing
        self.display = colour.DisplayWriter(scene) if colour_managed else None
        self.worker = DreamWorker(link, job, reply_as_linear if colour_managed else reply_as_target)
        self.done = 0
        self.error: Optional[str] = None
        self.cancelled = False
        self.current_fraction = 0.0
        self.submitted = 0

    @property
    def scene(self):
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise DreamError(f"the scene {self.scene_name!r} is gone (renamed or deleted) while dreaming")
        return scene

    @property
    def total(self) -> int:
        return len(self.todo)

    @property
    def fraction(self) -> float:
        return (self.done + self.current_fraction) / max(1, self.total)

    @property
    def finished(self) -> bool:
        return self.error is not None or self.cancelled or self.done == self.total

    def status(self) -> str:
        return f"Dreaming frame {min(self.done + 1, self.total)}/{self.total} ({self.fraction:.0%})"

    def _feed(self) -> None:
        """Renders and submits the next frame while the worker has room: its
        frames in flight and one waiting, so the stream to the server never
        runs dry between frames."""
        if self.submitted >= self.total or self.submitted - self.done > DreamWorker.IN_FLIGHT:
            return
        scene = self.scene
        plan = self.todo[self.submitted]
        exists = os.path.exists(plan.source)
        if not self.render_missing:
            if not exists:
                raise DreamError(f"source frame missing: {plan.source}")
        elif not exists or (problem := rendering.render_problem(scene, plan.source)):
            if exists:
                print(f"Dream Renders: the render of frame {plan.frame} is {problem}; rendering it again", flush=True)
            rendering.render_to_file(scene, plan.frame, plan.source)
        resume = self.resume_point() if self.submitted == 0 else None
        self.worker.submit(plan, resume)
        self.submitted += 1

    def resume_point(self) -> Optional[FramePlan]:
        """The frame before the first to do, sent along with it so the dream
        carries on. For colour-managed runs its dream goes as the scene-linear
        file kept beside the display frame (in the same space as the render)."""
        before = resume_point(self.plans, self.todo)
        if before is None or self.display is None:
            return before
        linear = reply_as_linear(before)[0]
        return replace(before, target=linear) if os.path.exists(linear) else before

    def tick(self, wait: float = 0.0) -> None:
        """Feeds the worker and handles its messages; waits up to ``wait`` s for one."""
        if self.finished:
            return  # cancelled or failed: render and send nothing more
        try:
            self._feed()
        except DreamError as err:
            self.fail(str(err))
            return
        deadline = time.monotonic() + wait
        while not self.finished:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                message = self.worker.messages.get(timeout=timeout) if timeout else self.worker.messages.get_nowait()
            except queue.Empty:
                return
            self._handle(message)
            if isinstance(message, FrameDone):
                return  # let the caller feed the next frame

    def _handle(self, message: Message) -> None:
        if isinstance(message, FrameProgress):
            self.current_fraction = message.fraction
        elif isinstance(message, FrameDone):
            if not self._display(message):
                return
            self.done += 1
            self.current_fraction = 0.0
            self._remember(message.target)
        elif isinstance(message, RunCancelled):
            self.cancelled = True
        elif isinstance(message, FrameFailed):
            self.fail(message.describe())
        if self.finished:
            self.worker.finish()

    def _display(self, message: FrameDone) -> bool:
        """Writes a colour-managed frame from the linear dream; False if that failed."""
        if self.display is None:
            return True
        try:
            self.display.write(message.written, message.target)
        except DreamError as err:
            self.fail(f"frame {message.frame}: {err}")
            return False
        return True

    def close(self) -> None:
        """Removes what the run made for itself (the colour helper scene)."""
        if self.display is not None:
            self.display.close()
            self.display = None

    def _remember(self, target: str) -> None:
        try:
            self.cache.record(target, self.prints[target])
        except OSError as err:  # the frame is there; only its reuse next time is lost
            print(f"Dream Renders: cannot update the frame cache next to {target}: {err.strerror}")

    def fail(self, message: str) -> None:
        self.error = message
        self.worker.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        self.worker.cancel()

    def targets(self) -> list[str]:
        """The dreamed frames on disk that this run's settings made or confirmed."""
        return [p.target for p in self.plans if self.cache.reusable(p, self.prints[p.target])]
