"""What every dream operator shares: a mixin that runs a
:class:`~..runs.FrameRun` modally in the UI (responsive, Esc cancels) or
blocking in scripts and ``blender --background``, with one ``_quit`` that
cleans up on every way out."""
from __future__ import annotations

import sys
import time
import uuid
from typing import Optional

import bpy

from .. import scene_state
from ..preferences import configured_link
from ..reports import run_failure_exits, run_summary
from ..runs import FrameRun
from ..server_link import ConnectionFailed
from ..shot.frame_plans import FramePlan
from ..user_errors import UserError

REDRAW_EVERY = 0.5  # s between redraws of the progress


def report_failure(operator, message: str) -> None:
    """Reports an error; in ``blender -b`` ends Blender with status 1 (unless told not to)."""
    if run_failure_exits(bpy.app.background, getattr(operator, "exit_on_error", True)):
        print(f"Dream Renders: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(1)
    operator.report({"ERROR"}, f"Dream Renders: {message}")


class DreamRunOperator:
    """Mixin: subclasses give ``plans(context)`` and ``finish(context, run)``,
    and may name their job (``job_name``)."""

    bl_options = {"REGISTER"}  # no UNDO flag: its redo panel would re-run a whole shot; see _undo_step
    render_missing = True
    colour_managed = True  # the sources are our scene-linear renders: write dreams with the scene's look
    exit_on_error: bpy.props.BoolProperty(
        name="Exit on Error", default=True, options={"SKIP_SAVE"},
        description="In background mode (blender -b), end Blender with status 1 when the run fails, "
                    "so render farms see the failure; scripts that handle errors turn this off")
    redream: bpy.props.BoolProperty(
        name="Re-dream", default=False, options={"SKIP_SAVE"},
        description="Dream every frame again, even those whose dream is already of the scene and settings as "
                    "they are now")
    rerender: bpy.props.BoolProperty(
        name="Render Again", default=False, options={"SKIP_SAVE"},
        description="Render every frame again, even where the scene has not changed since its render (for changes "
                    "Blender does not report: image files or caches changed on disk, drivers reading outside data)")
    _timer = None
    _shown_at = 0.0  # when the progress was last drawn
    _run: Optional[FrameRun] = None
    _frame = 0

    def plans(self, context) -> list[FramePlan]:
        raise NotImplementedError

    def job_name(self, context) -> str:
        """Unique per run: two Blender sessions sharing a server never share a sequence."""
        return f"{context.scene.name}/{self.bl_idname}/{uuid.uuid4().hex[:12]}"

    def finish(self, context, run: FrameRun) -> None:
        pass

    def renders_again(self) -> bool:
        """Whether every frame is rendered anew, whatever its render on disk (Render Again)."""
        return self.rerender

    def dreams_every_frame(self) -> bool:
        """Whether every frame is dreamed, none kept: then a server that does not answer is said before
        anything renders (elsewhere frames with a current dream need no server)."""
        return False

    def _start(self, context) -> Optional[FrameRun]:
        self._frame = context.scene.frame_current  # the run moves through the frames; the user's comes back
        try:
            frame_plans = self.plans(context)
            link = configured_link(context)
            if self.dreams_every_frame():
                link.answers()
            run = FrameRun(context.scene, frame_plans, self.job_name(context), link, self.render_missing,
                           redream=self.redream, colour_managed=self.colour_managed, rerender=self.renders_again())
        except (UserError, ConnectionFailed) as err:
            if context.scene.frame_current != self._frame:
                scene_state.move_to_frame(context.scene, self._frame)  # evaluating the frames' settings moved it
            self._fail(context, str(err))
            return None
        return run

    def _fail(self, context, message: str) -> set:
        """A run that fails says why where the user looks: the panel's status line and Blender's report."""
        context.window_manager.dream.say(run_summary(dreamed=0, kept=0, error=message))
        report_failure(self, message)
        return {"CANCELLED"}

    def _end(self, context, run: FrameRun) -> set:
        run.close()
        if context.scene.frame_current != self._frame:
            scene_state.move_to_frame(context.scene, self._frame)
        wm = context.window_manager
        wm.dream.running = False
        wm.dream.progress = run.fraction
        if run.error:
            return self._fail(context, run.error)
        try:
            self.finish(context, run)
        except UserError as err:
            return self._fail(context, str(err))
        if run.cancelled:
            wm.dream.say(run_summary(dreamed=run.done - run.skipped, kept=run.skipped, cancelled=True,
                                     stopped=run.stopped))
            self.report({"WARNING"}, wm.dream.status)
            return {"CANCELLED"}
        wm.dream.say(run_summary(dreamed=run.done - run.skipped, kept=run.skipped, rewritten=run.rewritten))
        self.report({"INFO"}, wm.dream.status)
        self._undo_step()
        return {"FINISHED"}

    def _undo_step(self) -> None:
        """One undo step per run: Ctrl+Z takes back its strip (and the scene made for it)."""
        if bpy.app.background:
            return  # no undo history without a window
        try:
            bpy.ops.ed.undo_push(message=self.bl_label)
        except RuntimeError:  # no window to push from (a script without one)
            pass

    # blocking: scripts and --background
    def execute(self, context):
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        context.window_manager.dream.running = True
        last = -1.0
        while not run.finished:
            try:
                run.tick(wait=0.5)
            except Exception as err:  # the run ends and says why; the panel is never left "running"
                run.fail(f"{type(err).__name__}: {err}")
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
        self._run.render_in_job = True  # frames render as Render Animation renders them: the window stays live
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
            try:
                run.tick(wait=0.0)  # never blocks: frames render in Blender's render job, dreams on the server
            except Exception as err:  # the run ends and says why; the panel is never left "running"
                run.fail(f"{type(err).__name__}: {err}")
            self._show_progress(context, run)
        if not run.finished:
            return {"PASS_THROUGH"}
        self._quit(context)
        return self._end(context, run)

    def cancel(self, context):
        """Blender cancels a modal operator (a file loaded, Blender quitting): stop everything."""
        if self._run is not None:
            self._run.cancel()
            try:
                self._run.close()
            except (ReferenceError, RuntimeError):  # a file being loaded may have freed it already
                pass
        self._quit(context)
        context.window_manager.dream.running = False

    def _show_progress(self, context, run: FrameRun) -> None:
        wm = context.window_manager
        now = time.monotonic()
        if now - self._shown_at < REDRAW_EVERY or not wm.dream.say(run.status()):
            return  # a window redrawn 10 times a second slows the render it shows
        self._shown_at = now
        wm.dream.progress = run.fraction
        wm.progress_update(int(run.fraction * 100))
        if context.workspace is not None:
            context.workspace.status_text_set(f"{run.status()} - Esc to cancel")
        for area in getattr(context.screen, "areas", ()):
            area.tag_redraw()

    def _quit(self, context) -> None:
        """Removes the timer, the progress and the status text: every way out goes through here."""
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
            wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
