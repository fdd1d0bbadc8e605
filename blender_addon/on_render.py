"""Dream on Render (``scene.dream.on_render``): Blender's own render jobs
(Render Animation, ``blender -b shot.blend -a``, ``-f N``, ``-s A -e B -a``)
write *dreamed* frames where the scene's output goes, in its format.

How: when a render starts, the scene's output is pointed at our raw renders
(multilayer EXR with the Vector pass, in the Dream output folder). Blender
renders and writes each raw frame; as it is written (``render_write``) it
goes to the dream server while Blender renders the next one. Each dream
comes back scene-linear and Blender writes it to the user's own output path
through the scene's colour management (:class:`~.colour.DisplayWriter`).
When the render ends the user's settings come back, and the last frames are
waited for. A chunk that starts right after frames already on disk carries
the dream on from them. In ``blender -b`` a failure ends Blender with
status 1, so a farm sees it.

Blender calls render handlers from its render thread when a window is open,
so there only settings are switched (see :mod:`.render_thread`) and frames
submitted; files are written from a timer on the main thread. In background
mode everything runs on the one thread, and the handlers write the frames
themselves."""
from __future__ import annotations

import os
import queue
import shutil
import sys
import tempfile
import uuid
from typing import Optional

import bpy
from bpy.app.handlers import persistent

from . import colour, plans, rendering, seams
from .dreaming import DreamWorker, FrameDone, FrameFailed, RunCancelled
from .errors import DreamError
from .preferences import configured_link
from .render_thread import writes_scene
from .rendering import OutputSettings
from .wire.plans import FramePlan, seam_folder

MOVIE_ERROR = ("Dream on Render writes image files, not movies: set the output's file format to an image "
               "format (PNG, JPEG, TIFF or OpenEXR), then make the movie from the dreamed frames")
GUI_PUMP_INTERVAL = 0.2  # s between the main thread's looks at finished dreams while a window is open


class RenderDreaming:
    """One render job's dreaming: the user's output settings, the worker,
    and the frames submitted and written so far."""

    def __init__(self, scene, link, job: str) -> None:
        self.scene_name = scene.name
        self.user_output = OutputSettings.capture(scene)
        if self.user_output.is_movie:
            raise DreamError(MOVIE_ERROR)
        plans.dream_params(scene)  # settings that cannot be dreamed are refused before the first frame
        self.raw_pattern = plans.frame_file(scene, "renders", "#####")  # Dream Animation's renders, same names
        self.linear_pattern = plans.frame_file(scene, "linear", "#####")  # kept: the next chunk starts there
        self.write_from = write_from_argument()  # a farm chunk's first frame: those before it are its pre-roll
        self.preroll = Preroll(self.raw_pattern) if self.write_from is not None else None
        self.seams_root = os.path.join(os.path.dirname(os.path.dirname(self.raw_pattern)), "seams")
        self.fade = fade_argument()
        self.faded = self._faded_frames(scene, self.fade)  # pre-roll dreams kept for the seam's cross-fade
        self.worker = DreamWorker(link, job, self._reply)
        self.writer: Optional[colour.DisplayWriter] = None
        self.submitted = 0
        self.written = 0
        self.prerolled = 0
        self.error: Optional[str] = None
        self.ended = False  # Blender's render job is over; frames may still be dreaming
        self.cancelled = False
        rendering.raw_output(scene, self.raw_pattern)

    # -- paths
    def raw_path(self, frame: int) -> str:
        return _numbered(self.raw_pattern, frame)

    def linear_path(self, frame: int) -> str:
        return _numbered(self.linear_pattern, frame)

    def seam_copy(self, frame: int) -> str:
        folder = seam_folder(self.write_from, len(self.faded))
        return os.path.join(self.seams_root, folder, os.path.basename(self.linear_path(frame)))

    def _reply(self, plan: FramePlan) -> tuple[str, str]:
        if plan.frame in self.faded:
            return self.seam_copy(plan.frame), "exr"
        if self.is_preroll(plan.frame):
            return self.preroll.path(plan.frame, "linear"), "exr"
        return self.linear_path(plan.frame), "exr"

    def _faded_frames(self, scene, fade: int) -> list[int]:
        """The last ``fade`` pre-roll frames (fewer near the shot's start, where the pre-roll is shorter)."""
        if fade and self.write_from is None:
            raise DreamError(f"{FADE} needs {WRITE_FROM} (the chunk's first written frame)")
        if not fade:
            return []
        return list(range(scene.frame_start, self.write_from, scene.frame_step))[-fade:]

    def is_preroll(self, frame: int) -> bool:
        return self.write_from is not None and frame < self.write_from

    @writes_scene
    def frame_starts(self, scene) -> None:
        """A pre-roll frame's raw render goes to a scratch folder of this job:
        the chunk before writes that frame to the shared one."""
        if self.preroll is not None:
            preroll = self.is_preroll(scene.frame_current)
            scene.render.filepath = self.preroll.pattern("renders") if preroll else self.raw_pattern

    def target_path(self, scene, frame: int) -> str:
        """Where Blender itself would write ``frame``: the user's path, padding and extension."""
        self.user_output.apply(scene)
        try:
            return scene.render.frame_path(frame=frame)
        finally:
            if not self.ended:  # after the render (seams) the user's settings stay
                rendering.raw_output(scene, self.raw_pattern)

    # -- Blender's render job
    def frame_written(self, scene) -> None:
        """Blender wrote the raw render of the current frame: send it to dream
        (a pre-roll frame only to warm the chain, and not at all when the
        chunk can carry on from the dream of the frame before it on disk)."""
        frame = scene.frame_current
        if self.is_preroll(frame):
            if self._resume_point(self.write_from - scene.frame_step) is not None:
                return  # the chunk before left its last frame: carry on from that instead
            target = self.preroll.path(frame, "frames")
        else:
            target = self.target_path(scene, frame)
        plan = FramePlan(frame, scene.render.frame_path(frame=frame), target,
                         params=plans.dream_params(scene))  # keyframed settings are evaluated at this frame
        resume = self._resume_point(frame - scene.frame_step) if self.submitted == 0 else None
        if resume is not None:
            print(f"Dream Renders: frame {frame} carries on from the dream of frame {resume.frame}", flush=True)
        self.worker.submit(plan, resume)
        self.submitted += 1

    def _resume_point(self, frame: int) -> Optional[FramePlan]:
        """The frame before this chunk, when its raw render and its dream are on disk."""
        raw, linear = self.raw_path(frame), self.linear_path(frame)
        if os.path.exists(raw) and os.path.exists(linear):
            return FramePlan(frame, raw, linear)
        return None

    def render_ended(self, scene, cancelled: bool = False) -> None:
        """Blender's render job is over: the user's settings come back."""
        self.ended = True
        if cancelled:
            self.cancel()
        else:
            self.worker.finish()
        self.user_output.apply(scene)

    def restore_user_output(self) -> None:
        """The user's output settings back on the scene (if it still exists)."""
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is not None:
            self.user_output.apply(scene)

    def cancel(self) -> None:
        self.cancelled = True
        self.worker.cancel()

    # -- main thread: write what the server dreamed
    @property
    def finished(self) -> bool:
        return self.error is not None or self.cancelled or (self.ended and self.written == self.submitted)

    def pump(self, wait: float = 0.0) -> None:
        """Writes the dreams that came back; waits up to ``wait`` s for one."""
        while not self.finished:
            try:
                message = self.worker.messages.get(timeout=wait) if wait else self.worker.messages.get_nowait()
            except queue.Empty:
                return
            self._handle(message)

    def _handle(self, message) -> None:
        if isinstance(message, FrameDone):
            self._write(message)
        elif isinstance(message, FrameFailed):
            self.fail(message.describe())
        elif isinstance(message, RunCancelled):
            self.cancelled = True

    def _write(self, message: FrameDone) -> None:
        if self.is_preroll(message.frame):
            self.written += 1
            self.prerolled += 1
            print(f"Dream Renders: pre-roll frame {message.frame} dreamed (not written)", flush=True)
            return
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            self.fail(f"the scene {self.scene_name!r} is gone (renamed or deleted) while dreaming")
            return
        if self.writer is None:
            self.writer = colour.DisplayWriter(scene, self.user_output)
        try:
            self.writer.write(message.written, message.target)
        except DreamError as err:
            self.fail(f"frame {message.frame}: {err}")
            return
        self.written += 1
        print(f"Dream Renders: dreamed frame {message.frame} -> {message.target}", flush=True)

    def merge_seams(self) -> None:
        """Cross-fades the seams this chunk completes: at its start (its
        pre-roll's copies, when the chunk before has dreamed those frames) and
        at its end (the chunk after's copies of this chunk's last frames)."""
        scene = bpy.data.scenes.get(self.scene_name)
        if not self.fade or scene is None or self.error or self.cancelled or not os.path.isdir(self.seams_root):
            return  # only farm chunks given a fade blend: a whole render has no seams
        first = min([self.write_from, *self.faded])
        if self.writer is None:
            self.writer = colour.DisplayWriter(scene, self.user_output)
        try:
            merged = seams.merge(self.seams_root, (first, scene.frame_end), self.linear_pattern, self.linear_path,
                                 lambda frame: self.target_path(scene, frame), self.writer)
        except DreamError as err:
            self.fail(f"cross-fading a seam: {err}")
            return
        if merged:
            print(f"Dream Renders: cross-faded frame(s) {', '.join(map(str, merged))} at chunk seams", flush=True)

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self.worker.cancel()

    def close(self, remove_helper: bool) -> None:
        """``remove_helper``: only outside render handlers (else the next save removes it)."""
        if self.writer is not None and remove_helper:
            self.writer.close()
        self.writer = None
        if self.preroll is not None:
            self.preroll.remove()

    def summary(self) -> str:
        if self.error:
            return f"Dream on Render failed: {self.error}"
        if self.cancelled:
            return f"Dream on Render cancelled after {self.written} frame(s)"
        done = self.written - self.prerolled
        warm = f" after {self.prerolled} pre-roll frame(s)" if self.prerolled else ""
        return f"Dream on Render: {done} frame(s) dreamed{warm}"


WRITE_FROM = "--dream-write-from"
FADE = "--dream-fade"


def _script_argument(name: str) -> Optional[int]:
    """The number after ``name`` among the arguments after ``--``, or None."""
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if name not in args:
        return None
    try:
        return int(args[args.index(name) + 1])
    except (IndexError, ValueError):
        raise DreamError(f"{name} needs a number") from None


def write_from_argument() -> Optional[int]:
    """``blender -b shot.blend -s 90 -e 200 -a -- --dream-write-from 100``: a
    farm chunk of frames 100-200 with frames 90-99 as its pre-roll."""
    return _script_argument(WRITE_FROM)


def fade_argument() -> int:
    """``... -- --dream-write-from 100 --dream-fade 5``: frames 95-99 are
    cross-faded with the chunk before's dreams of them (see :mod:`.seams`)."""
    fade = _script_argument(FADE) or 0
    if fade < 0:
        raise DreamError(f"{FADE} must be 0 or more frames")
    return fade


class Preroll:
    """A job's scratch folder for its pre-roll frames (raw renders, dreams), removed at its end."""

    def __init__(self, raw_pattern: str) -> None:
        parent = os.path.dirname(os.path.dirname(raw_pattern))  # the Dream output folder
        os.makedirs(parent, exist_ok=True)
        self.folder = tempfile.mkdtemp(prefix=".preroll_", dir=parent)
        self.name = os.path.basename(raw_pattern)

    def pattern(self, kind: str) -> str:
        return os.path.join(self.folder, kind, self.name)

    def path(self, frame: int, kind: str) -> str:
        return _numbered(self.pattern(kind), frame)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _numbered(pattern: str, frame: int) -> str:
    folder, name = os.path.split(pattern)
    return os.path.join(folder, name.replace("#####", f"{frame:05d}"))


_active: Optional[RenderDreaming] = None
last_summary = ""  # what the last render job's dreaming came to (scripts and tests read it)


def _exits_on_failure() -> bool:
    """``blender -b``: a failure ends Blender with status 1 so a farm sees it
    (not the bpy module inside someone's script, and not with a window open)."""
    return bool(bpy.app.background and bpy.app.binary_path)


def _show(summary: str, failed: bool) -> None:
    """The outcome, where the user looks: the console and the panel."""
    global last_summary
    last_summary = summary
    print(f"Dream Renders: {summary}", file=sys.stderr if failed else sys.stdout, flush=True)
    wm = bpy.context.window_manager
    if wm is not None and hasattr(wm, "dream"):
        wm.dream.status = summary


def _report(summary: str, failed: bool) -> None:
    _show(summary, failed)
    if failed and _exits_on_failure():
        raise SystemExit(1)


def _finish(dreaming: RenderDreaming, in_handler: bool = True) -> None:
    global _active
    _active = None
    dreaming.merge_seams()
    dreaming.close(remove_helper=not in_handler)
    if dreaming.submitted or dreaming.error:
        _report(dreaming.summary(), dreaming.error is not None)


def _dream_the_still() -> None:
    """F12 writes no file: its result is dreamed as Dream Frame > Use
    Existing Render would, and shown in the Image Editor."""
    windows = bpy.context.window_manager.windows
    if not windows:
        return
    with bpy.context.temp_override(window=windows[0]):
        bpy.ops.dream.render_frame("INVOKE_DEFAULT", use_existing=True)


@persistent
def _on_init(scene, *_args) -> None:
    global _active
    if rendering.is_own_render() or not scene.dream.on_render:
        return
    if _active is not None:  # a job that never ended (Blender stopped it without telling): drop it
        _active.restore_user_output()  # its scene gets its own settings back
        _active.cancel()
        _active.close(remove_helper=False)
        _active = None
    try:
        _active = RenderDreaming(scene, configured_link(bpy.context), f"{scene.name}/render/{uuid.uuid4().hex[:12]}")
    except Exception as err:  # not only DreamError: nothing may let a farm write undreamed frames as if all went well
        _report(f"Dream on Render failed: {_why(err)}", True)
        return
    if not bpy.app.background:
        bpy.app.timers.register(_gui_pump, first_interval=GUI_PUMP_INTERVAL)


def _why(err: Exception) -> str:
    """What a failure says: our own errors as written, anything else with its type."""
    return str(err) if isinstance(err, DreamError) else f"{type(err).__name__}: {err}"


def _guarded(dreaming: RenderDreaming, step, *args) -> None:
    """A handler's step: what it raises fails the dreaming, which then ends
    and says why, instead of waiting for frames that never come."""
    try:
        step(*args)
    except Exception as err:
        dreaming.fail(_why(err))


@persistent
def _on_pre(scene, *_args) -> None:
    dreaming = _active
    if dreaming is not None and dreaming.scene_name == scene.name and not dreaming.finished:
        _guarded(dreaming, dreaming.frame_starts, scene)


@persistent
def _on_write(scene, *_args) -> None:
    dreaming = _active
    if dreaming is None or dreaming.scene_name != scene.name or dreaming.finished:
        return
    _guarded(dreaming, dreaming.frame_written, scene)
    if bpy.app.background:
        dreaming.pump()
        if dreaming.error and _exits_on_failure():  # no point rendering frames that cannot be dreamed
            dreaming.render_ended(scene, cancelled=True)
            _finish(dreaming)


def _end(scene, cancelled: bool) -> None:
    dreaming = _active
    if dreaming is None or dreaming.scene_name != scene.name:
        return
    _guarded(dreaming, dreaming.render_ended, scene, cancelled)
    if bpy.app.background:
        while not dreaming.finished:
            dreaming.pump(wait=0.5)
        _finish(dreaming)


@persistent
def _on_complete(scene, *_args) -> None:
    _end(scene, cancelled=False)


@persistent
def _on_cancel(scene, *_args) -> None:
    _end(scene, cancelled=True)


def _gui_pump() -> Optional[float]:
    """A timer on the main thread while a window is open: writes finished dreams."""
    dreaming = _active
    if dreaming is None:
        return None
    dreaming.pump()
    if dreaming.finished and dreaming.ended:
        dreaming.restore_user_output()  # again, from the main thread, where Blender never refuses it
        _finish(dreaming, in_handler=False)
        if not dreaming.submitted and not dreaming.cancelled and dreaming.error is None:
            _dream_the_still()
        return None
    if dreaming.error:  # say so now; the user's settings come back when Blender's render ends
        _show(dreaming.summary(), True)
    return GUI_PUMP_INTERVAL


@persistent
def _on_save_pre(*_args) -> None:
    """A .blend saved during a render keeps the user's output settings, not
    ours; saved after one, it keeps no helper scene."""
    dreaming = _active
    if dreaming is None:
        colour.remove_helper()
        return
    if not dreaming.ended:
        dreaming.restore_user_output()


@persistent
def _on_save_post(*_args) -> None:
    dreaming = _active
    scene = bpy.data.scenes.get(dreaming.scene_name) if dreaming else None
    if scene is not None and not dreaming.ended:
        rendering.raw_output(scene, dreaming.raw_pattern)


HANDLERS = (("render_init", _on_init), ("render_pre", _on_pre), ("render_write", _on_write),
            ("render_complete", _on_complete), ("render_cancel", _on_cancel), ("save_pre", _on_save_pre),
            ("save_post", _on_save_post))


def register() -> None:
    for name, handler in HANDLERS:
        getattr(bpy.app.handlers, name).append(handler)


def unregister() -> None:
    global _active
    for name, handler in HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if handler in handlers:
            handlers.remove(handler)
    if _active is not None:
        _active.cancel()
        _active = None
