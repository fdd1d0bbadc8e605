"""Dream on Render (``scene.dream.on_render``): Blender's own render jobs
(Render Animation, ``blender -b shot.blend -a``, ``-f N``, ``-s A -e B -a``,
a script's ``render(write_still=True)``) write *dreamed* frames where the
scene's output goes, in its format. This module is Blender's side: the
render handlers, which hand each job to a
:class:`~.render_job.RenderDreaming` (its Blender shell; what a job keeps,
dreams and writes is decided by :class:`~.chunk_dreaming.ChunkDreaming`),
and how a job's end is reported (:mod:`.reports` says what and whether
Blender exits). In ``blender -b`` any failure ends Blender with status 1,
so a farm sees it.

Blender calls render handlers from its render thread when a window is open,
so there only settings are switched (see :mod:`.render_thread`) and frames
submitted; files are written from a timer on the main thread. In background
mode everything runs on the one thread, and the handlers write the frames
themselves."""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import traceback
import uuid
from typing import Optional

import bpy
from bpy.app.handlers import persistent

from . import colour_management, rendering, scene_frames, scene_state, write_refusal
from .output_settings import OutputSettings
from .preferences import configured_link
from .render_job import RenderDreaming
from .render_thread import refused_while_rendering
from .reports import frames_text, render_failure_exits, render_progress, why

GUI_PUMP_INTERVAL = 0.2  # s between the main thread's looks at finished dreams while a window is open
GUI_IDLE_INTERVAL = 0.5  # s between its looks for a render job to pump while none is dreaming


_active: Optional[RenderDreaming] = None
_finishing: list[RenderDreaming] = []  # a window's jobs whose render ended while their dreams are still coming
last_summary = ""  # what the last render job's dreaming came to (scripts and tests read it)
REFUSED_PREFIX = "dream_refused_"
_refused: Optional[tuple[str, OutputSettings, str]] = None  # a refused job: scene, its output, the folder


def _exits_on_failure() -> bool:
    return render_failure_exits(bpy.app.background, bpy.app.binary_path)


def _show(summary: str, failed: bool) -> None:
    """The outcome, where the user looks: the console and the panel."""
    global last_summary
    last_summary = summary
    print(f"Dream Renders: {summary}", file=sys.stderr if failed else sys.stdout, flush=True)
    _set_status(summary)


def _set_status(text: str) -> None:
    wm = bpy.context.window_manager
    if wm is not None and hasattr(wm, "dream"):
        wm.dream.say(text)


def _report(summary: str, failed: bool) -> None:
    _show(summary, failed)
    if failed and _exits_on_failure():
        raise SystemExit(1)


def _finish(dreaming: RenderDreaming, in_handler: bool = True) -> None:
    global _active
    _active = None
    dreaming.close(in_handler)
    if dreaming.has_news:
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
@scene_state.while_rendering
def _on_init(scene, *_args) -> None:
    global _active
    if rendering.is_own_render() or not scene.dream.on_render or colour_management.is_helper(scene):
        return
    if _active is not None and _active.outlives_its_render(_frames_of(scene)):
        _finishing.append(_active)  # its dreams are still written (see _gui_pump)
    elif _active is not None:  # a job that never ended (Blender stopped it without telling), or whose frames
        _drop(_active)  # this job may render again: its scene given its own settings back
    _active = None
    _restore_refused()
    rendering.restore_noted_outputs()  # a file saved mid-render, loaded before the add-on (blender -b --addons)
    try:
        _active = RenderDreaming(scene, configured_link(bpy.context), f"{scene.name}/render/{uuid.uuid4().hex[:12]}")
    except Exception as err:  # not only UserError: nothing may let a farm write undreamed frames as if all went well
        _refuse(scene)
        _report(f"Dream on Render failed: {why(err)}; the render writes nothing", True)
        return


def _frames_of(scene) -> set[int]:
    """The frames a render job of ``scene`` may render as frames (a still is written apart: no frame's files)."""
    return set(scene_frames.render_frames(scene))


def _drop(dreaming: RenderDreaming) -> None:
    unwritten = dreaming.unwritten if dreaming.ended and not dreaming.finished else []
    if unwritten:  # its dreams would race this job's of the same frames: said, not lost in silence
        print(f"Dream Renders: a render started before the dreams of frame(s) {frames_text(unwritten)} were "
              "written; they are dropped: render those frames again to dream them", file=sys.stderr, flush=True)
    dreaming.restore_user_output()
    dreaming.cancel()
    dreaming.close(in_handler=True)


def _refuse(scene) -> None:
    """A job that cannot be dreamed writes nothing where the user looks (a
    script's render or a window's goes on): its frames go to a folder of
    their own, removed with it when the render ends."""
    global _refused
    folder = tempfile.mkdtemp(prefix=REFUSED_PREFIX)
    atexit.register(shutil.rmtree, folder, True)  # blender -b ends at the failure
    _refused = (scene.name, OutputSettings.capture(scene), folder)
    rendering.redirected(scene.name, _refused[1])
    rendering.point_output(scene, os.path.join(folder, "frame_"))


def _restore_refused() -> None:
    global _refused
    if _refused is None:
        return
    name, output, folder = _refused
    _refused = None
    rendering.given_back(name)
    scene = bpy.data.scenes.get(name)
    if scene is not None:
        output.apply(scene)
    shutil.rmtree(folder, ignore_errors=True)


def _guarded(dreaming: RenderDreaming, step, *args) -> None:
    """A handler's step: what it raises fails the dreaming, which then ends
    and says why, instead of waiting for frames that never come."""
    try:
        step(*args)
    except Exception as err:
        dreaming.fail(why(err))


@persistent
@scene_state.while_rendering
def _on_pre(scene, *_args) -> None:
    dreaming = _active
    if dreaming is not None and dreaming.scene_name == scene.name and not dreaming.finished:
        _guarded(dreaming, dreaming.frame_starts, scene)


@persistent
@scene_state.while_rendering
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
    if _refused is not None and _refused[0] == scene.name:
        _restore_refused()
    dreaming = _active
    if dreaming is None or dreaming.scene_name != scene.name:
        return
    _guarded(dreaming, dreaming.render_ended, scene, cancelled)
    if bpy.app.background:
        while not dreaming.finished:
            dreaming.pump(wait=0.5)
        _finish(dreaming)


@persistent
@scene_state.while_rendering
def _on_complete(scene, *_args) -> None:
    _end(scene, cancelled=False)


@persistent
@scene_state.while_rendering
def _on_cancel(scene, *_args) -> None:
    _end(scene, cancelled=True)


@scene_state.while_rendering
def _gui_pump() -> float:
    """A timer on the main thread while a window is open: writes finished
    dreams. Registered once, from the main thread: the render handlers run
    in Blender's render thread, which may not register timers (Blender's
    timer list has no lock, and a timer registered from there can be lost).
    It frees Blender's refusal of Python writes when it is stuck (see
    :mod:`.write_refusal`): a render thread's writes wait for that.
    It never raises: Blender would drop it, and every job after would wait."""
    try:
        write_refusal.free_if_stuck()
        return _pump_once()
    except Exception as err:
        traceback.print_exc()
        if _active is not None:
            _active.fail(why(err))
        return GUI_PUMP_INTERVAL


def _pump_once() -> float:
    _pump_finishing()
    dreaming = _active
    if dreaming is None:
        return GUI_IDLE_INTERVAL
    dreaming.pump()
    if dreaming.finished and dreaming.ended:
        if bpy.app.is_job_running("RENDER"):  # past render_complete, Blender's job still holds the scene a moment
            return GUI_PUMP_INTERVAL
        try:
            dreaming.restore_user_output()  # again, from the main thread, once Blender's job has ended
        except AttributeError as err:
            if not refused_while_rendering(err):
                raise
            return GUI_PUMP_INTERVAL  # Blender still finishing the render: the next look gives them back
        _finish(dreaming, in_handler=False)
        if not _finishing:
            colour_management.remove_helpers()
        if dreaming.wrote_no_frame:
            _dream_the_still()
        return GUI_IDLE_INTERVAL
    if dreaming.error:  # say so now (once); the user's settings come back when Blender's render ends
        if dreaming.summary() != last_summary:
            _show(dreaming.summary(), True)
    elif dreaming.sent or not dreaming.ended:  # the panel says this job is under way (not the last one's outcome),
        # also once the render window is gone while dreams are still on their way
        _set_status(render_progress(len(dreaming.written_frames), dreaming.to_write))
    return GUI_PUMP_INTERVAL


def _pump_finishing() -> None:
    """The jobs whose render ended before their dreams, then a newer render
    started: their dreams are written, and what they came to said, once
    Blender renders no more (writing them can set the scene's output to
    find a seam's files, which a render must not see; the user's output
    settings are the newer job's to give back)."""
    if bpy.app.is_job_running("RENDER"):
        return
    for dreaming in list(_finishing):
        dreaming.pump()
        if dreaming.finished:
            _finishing.remove(dreaming)
            dreaming.close(in_handler=False)
            if dreaming.has_news:
                _show(dreaming.summary(), dreaming.error is not None)


def _say_unwritten() -> None:
    """Blender quits: the dreams still on their way are not written; which frames, said."""
    for dreaming in [*_finishing, _active]:
        if dreaming is not None and not dreaming.finished and dreaming.unwritten:
            print(f"Dream Renders: Blender quit before the dreams of frame(s) {frames_text(dreaming.unwritten)} "
                  "were written; their renders are kept: render them again to dream them", file=sys.stderr,
                  flush=True)


@persistent
def _on_save_pre(*_args) -> None:
    """A .blend saved during a render keeps our output settings with the
    user's noted beside them (given back at load: see rendering.note_user_output);
    saved after one, it keeps no helper scene."""
    rendering.note_user_outputs()  # Dream Animation's frame in Blender's render job, a refused job
    dreaming = _active
    if dreaming is None:
        colour_management.remove_helpers()
        return
    scene = bpy.data.scenes.get(dreaming.scene_name)
    if scene is not None and not dreaming.ended:
        rendering.note_user_output(scene, dreaming.user_output)


@persistent
def _on_save_post(*_args) -> None:
    rendering.drop_output_notes()


@persistent
def _on_load_post(*_args) -> None:
    """A file saved while it rendered for us gets the user's output back;
    the helper scenes it was saved with are no writer's now."""
    rendering.restore_noted_outputs()
    colour_management.forget_writers()
    colour_management.remove_helpers()


HANDLERS = (("render_init", _on_init), ("render_pre", _on_pre), ("render_write", _on_write),
            ("render_complete", _on_complete), ("render_cancel", _on_cancel), ("save_pre", _on_save_pre),
            ("save_post", _on_save_post), ("load_post", _on_load_post))


def register() -> None:
    for name, handler in HANDLERS:
        getattr(bpy.app.handlers, name).append(handler)
    if not bpy.app.background:
        bpy.app.timers.register(_gui_pump, first_interval=GUI_IDLE_INTERVAL, persistent=True)
    atexit.register(_say_unwritten)


def unregister() -> None:
    global _active
    for name, handler in HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if handler in handlers:
            handlers.remove(handler)
    if bpy.app.timers.is_registered(_gui_pump):
        bpy.app.timers.unregister(_gui_pump)
    atexit.unregister(_say_unwritten)
    for dreaming in _finishing:
        dreaming.cancel()
    _finishing.clear()
    if _active is not None:
        _active.cancel()
        _active = None
