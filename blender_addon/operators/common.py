"""What every dream operator shares: a :class:`FrameRun` that renders
missing frames on the main thread while a worker thread dreams finished ones,
and a mixin that runs it modally in the UI (responsive, Esc cancels) or
blocking in scripts and ``blender --background``."""
from __future__ import annotations

import os
import queue
import sys
import time

import bpy

from .. import frames
from ..dreaming import DreamWorker, FrameWork
from ..frames import DreamError, FramePlan
from ..server_link import ServerConfig, get_link

ADDON_ID = __package__.rsplit(".", 1)[0]


def addon_prefs(context):
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def server_link(context):
    config = ServerConfig.resolve(addon_prefs(context))
    problem = config.problem()
    if problem:
        raise DreamError(problem)
    return get_link(config)


class FrameRun:
    """Brings every plan to a dreamed frame on disk. Frames whose dream
    exists are skipped (a re-run resumes); sources that exist are not
    rendered again."""

    def __init__(self, scene, plans: list[FramePlan], job: str, link, render_missing: bool = True) -> None:
        self.scene = scene
        self.plans = plans
        self.todo = [p for p in plans if not p.done]
        self.skipped = len(plans) - len(self.todo)
        self.job = job
        self.render_missing = render_missing
        self.worker = DreamWorker(link)
        self.done = 0
        self.error: str | None = None
        self.cancelled = False
        self.current_fraction = 0.0
        self.submitted = 0

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
        plan = self.todo[self.submitted]
        if not os.path.exists(plan.source):
            if not self.render_missing:
                raise DreamError(f"source frame missing: {plan.source}")
            frames.render_to_file(self.scene, plan.frame, plan.source)
        params = frames.frame_params(self.scene, plan.frame)
        resume = frames.resume_point(self.plans, self.todo) if self.submitted == 0 else None
        self.worker.submit(FrameWork(plan.frame, plan.source, plan.target, params, self.job, resume))
        self.submitted += 1

    def tick(self, wait: float = 0.0) -> None:
        """Feeds the worker and handles its events; waits up to ``wait`` s for one."""
        try:
            self._feed()
        except DreamError as err:
            self.fail(str(err))
            return
        deadline = time.monotonic() + wait
        while not self.finished:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                event = self.worker.events.get(timeout=timeout) if timeout else self.worker.events.get_nowait()
            except queue.Empty:
                return
            self._handle(event)
            if event[0] == "done":
                return  # let the caller feed the next frame

    def _handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "progress":
            self.current_fraction = event[2]
        elif kind == "done":
            self.done += 1
            self.current_fraction = 0.0
        elif kind == "cancelled":
            self.cancelled = True
        elif kind == "error":
            self.fail(f"frame {event[1]}: {event[2]}")
        if self.finished:
            self.worker.finish()

    def fail(self, message: str) -> None:
        self.error = message
        self.worker.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        self.worker.cancel()

    def targets(self) -> list[str]:
        return [p.target for p in self.plans if p.done]


class DreamRunOperator:
    """Mixin: subclasses give ``plans(context)``, ``job_name(context)`` and ``finish(context, run)``."""

    bl_options = {"REGISTER"}
    render_missing = True
    exit_on_error: bpy.props.BoolProperty(
        name="Exit on Error", default=True, options={"SKIP_SAVE"},
        description="In background mode (blender -b), end Blender with status 1 when the run fails, "
                    "so render farms see the failure; scripts that handle errors turn this off")
    _timer = None
    _run: FrameRun | None = None

    def plans(self, context) -> list[FramePlan]:
        raise NotImplementedError

    def job_name(self, context) -> str:
        return f"{context.scene.name}/{self.bl_idname}"

    def finish(self, context, run: FrameRun) -> None:
        pass

    def _fail(self, message: str) -> None:
        """Reports an error; in ``blender -b`` ends Blender with status 1 (unless told not to)."""
        if bpy.app.background and self.exit_on_error:
            print(f"Dream Renders: error: {message}", file=sys.stderr, flush=True)
            raise SystemExit(1)
        self.report({"ERROR"}, f"Dream Renders: {message}")

    def _start(self, context) -> FrameRun | None:
        try:
            plans = self.plans(context)
            link = server_link(context)
        except DreamError as err:
            self._fail(str(err))
            return None
        run = FrameRun(context.scene, plans, self.job_name(context), link, self.render_missing)
        if run.skipped:
            self.report({"INFO"}, f"{run.skipped} frame(s) already dreamed; resuming")
        return run

    def _end(self, context, run: FrameRun) -> set:
        wm = context.window_manager
        wm.dream.running = False
        wm.dream.progress = run.fraction
        if run.error:
            wm.dream.status = f"Failed: {run.error}"
            self._fail(run.error)
            return {"CANCELLED"}
        try:
            self.finish(context, run)
        except DreamError as err:
            self._fail(str(err))
            return {"CANCELLED"}
        if run.cancelled:
            wm.dream.status = f"Cancelled after {run.done} frame(s); run again to resume"
            self.report({"WARNING"}, wm.dream.status)
            return {"CANCELLED"}
        wm.dream.status = f"Done: {run.done} frame(s) dreamed, {run.skipped} already there"
        self.report({"INFO"}, wm.dream.status)
        return {"FINISHED"}

    # blocking: scripts and --background
    def execute(self, context):
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        context.window_manager.dream.running = True
        last = -1.0
        while not run.finished:
            run.tick(wait=0.5)
            if run.fraction - last >= 0.1 or run.finished:
                last = run.fraction
                print(f"Dream Renders: {run.status()}", flush=True)
        return self._end(context, run)

    # modal: the UI stays responsive; Esc cancels
    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        self._run = self._start(context)
        if self._run is None:
            return {"CANCELLED"}
        wm = context.window_manager
        wm.dream.running = True
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        run = self._run
        if event.type == "ESC":
            run.cancel()
        elif event.type == "TIMER":
            run.tick(wait=0.0)  # a frame's render blocks briefly; dreaming never does
            wm = context.window_manager
            wm.dream.status = run.status()
            wm.dream.progress = run.fraction
            wm.progress_update(int(run.fraction * 100))
            context.workspace.status_text_set(f"{run.status()} - Esc to cancel")
            for area in context.screen.areas:
                area.tag_redraw()
        if not run.finished:
            return {"PASS_THROUGH"}
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)
        return self._end(context, run)
