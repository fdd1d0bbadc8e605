"""Rendering a frame into a file of our own (multilayer EXR with the Vector
pass) without changing what the user's scene writes, and showing a result."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os

import bpy

from . import compat, scene_state, strengths
from .output_settings import OutputSettings
from .render_records import disk_nearly_full, into_place, partial_path, render_problem
from .render_thread import writes_scene
from .reports import blender_reason
from .user_errors import RenderStopped, UserError


@writes_scene  # called from render handlers
def point_output(scene, path: str) -> None:
    """Points ``scene``'s renders elsewhere, in the format it has."""
    scene.render.filepath = path


@writes_scene  # also called from render handlers
def raw_output(scene, path: str) -> None:
    """Points ``scene``'s renders at ``path`` exactly: multilayer EXR with the
    Vector pass, and the Cryptomatte object pass when objects have strengths."""
    scene.render.filepath = path
    scene.render.use_file_extension = False
    compat.set_multilayer_exr(scene.render.image_settings)
    objects = strengths.in_use(scene)
    for layer in scene.view_layers:
        layer.use_pass_vector = True
        if objects:
            layer.use_pass_cryptomatte_object = True


_own_renders = 0  # renders of our own (Dream Animation, Dream Frame): Dream on Render leaves them alone


def is_own_render() -> bool:
    return _own_renders > 0


@contextlib.contextmanager
def render_output(scene, path: str):
    """Renders go to ``path`` as multilayer EXR with the Vector pass; the
    user's own output settings come back afterwards."""
    global _own_renders
    restore_noted_outputs()
    saved = OutputSettings.capture(scene)
    _own_renders += 1
    redirected(scene.name, saved)
    try:
        # the passes and outputs we set and give back are no edit of the scene: left pending, they were
        # counted as one when next evaluated, and the next run rendered every frame again
        with scene_state.own_changes(bpy.context):
            raw_output(scene, path)
        yield
    finally:
        _own_renders -= 1
        given_back(scene.name)
        with scene_state.own_changes(bpy.context):
            saved.apply(scene)


_redirected: dict[str, OutputSettings] = {}  # scenes rendering into an output of ours now: their own settings


def redirected(scene_name: str, output: OutputSettings) -> None:
    """A scene renders into an output of ours until :func:`given_back`: a
    .blend saved meanwhile notes its own (:func:`note_user_outputs`)."""
    _redirected[scene_name] = output


def given_back(scene_name: str) -> None:
    _redirected.pop(scene_name, None)

USER_OUTPUT = "dream_user_output"  # a scene saved while it renders for us: its own output settings, as JSON


def note_user_output(scene, output: OutputSettings) -> None:
    """A .blend saved while Blender renders into our output keeps ours and
    notes the user's beside it, given back when the file is loaded
    (:func:`restore_noted_outputs`). Giving them back for the save would
    race the render's own write, which reads the path as it writes: a frame
    could land, undreamed, where the user's output goes."""
    scene[USER_OUTPUT] = json.dumps(dataclasses.asdict(output))


def note_user_outputs() -> None:
    for name, output in _redirected.items():
        if name in bpy.data.scenes:
            note_user_output(bpy.data.scenes[name], output)


def drop_output_notes() -> None:
    """After the save: this session gives the settings back itself."""
    for scene in bpy.data.scenes:
        if USER_OUTPUT in scene:
            del scene[USER_OUTPUT]


def restore_noted_outputs() -> None:
    """A file saved while it rendered for us, loaded: the user's output back."""
    for scene in bpy.data.scenes:
        if USER_OUTPUT in scene:
            try:
                OutputSettings(**json.loads(scene[USER_OUTPUT])).apply(scene)
            except (TypeError, ValueError) as err:
                print(f"Dream Renders: cannot give {scene.name!r} its output settings back: {err}", flush=True)
            del scene[USER_OUTPUT]


def render_to_file(scene, frame: int, path: str) -> None:
    """Renders ``frame`` of ``scene`` into ``path``, blocking; only a
    complete, readable render is renamed into place."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scene_state.move_to_frame(scene, frame)
    partial = partial_path(path)
    with scene_state.own_changes(bpy.context), render_output(scene, partial):  # what the render updates is ours
        try:
            bpy.ops.render.render(write_still=True, scene=scene.name)
        except RuntimeError as err:  # Blender's own reason, as "Error: ...": said as the frame's
            raise UserError(f"Blender's render of frame {frame} failed: {blender_reason(err)}") from None
    into_place(partial, path, frame)


class FrameRenderJob:
    """``frame`` of ``scene`` rendered into ``path`` by Blender's render job,
    as Render Animation renders: in Blender's render thread, so the window
    stays live (a blocking render holds it for the whole frame). Started
    here; :meth:`done` says when it is over, :meth:`finish` puts the file
    in place (or raises), :meth:`abandon` lets it end on its own. Only from
    the main thread of a window's event loop (a modal operator's timer)."""

    def __init__(self, scene, frame: int, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        scene_state.move_to_frame(scene, frame)
        self.frame, self.path, self.partial = frame, path, partial_path(path)
        with contextlib.suppress(OSError):
            os.remove(self.partial)
        self._output = render_output(scene, self.partial)
        self._output.__enter__()  # the user's output comes back in _close, when the job is over
        self._open = True
        try:
            started = bpy.ops.render.render("INVOKE_DEFAULT", write_still=True, scene=scene.name)
        except RuntimeError as err:
            self._close()
            raise UserError(f"Blender could not start the render of frame {frame}: {err}") from None
        if "RUNNING_MODAL" not in started:
            self._close()
            raise UserError(f"Blender did not start the render of frame {frame} (is another render running?)")

    def done(self) -> bool:
        return not bpy.app.is_job_running("RENDER")

    def finish(self) -> None:
        """The render in place; :class:`RenderStopped` when it was stopped before its file was written."""
        self._close()
        if not os.path.exists(self.partial) and not disk_nearly_full(self.partial):
            raise RenderStopped(f"Blender's render of frame {self.frame} ended without its image")
        into_place(self.partial, self.path, self.frame)

    def abandon(self) -> None:
        """The run ended while Blender renders: the user's output comes back
        once the job is over, and its file is removed."""
        def when_over():
            if not self.done():
                return 0.2
            self._close()
            with contextlib.suppress(OSError):
                os.remove(self.partial)
            return None

        if when_over() is not None:
            bpy.app.timers.register(when_over, first_interval=0.2)

    def _close(self) -> None:
        if self._open:
            self._open = False
            self._output.__exit__(None, None, None)


def save_render_result(scene, path: str) -> None:
    """The last render (F12) as scene-linear multilayer EXR at ``path``.
    (``has_data`` is False for a finished Render Result too: saving is the test.)"""
    missing = "there is no render to dream yet: render (F12) first, or turn off Use Existing Render"
    result = bpy.data.images.get("Render Result")
    if result is None:
        raise UserError(missing)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with render_output(scene, path):
        try:
            result.save_render(path, scene=scene)
        except RuntimeError:
            raise UserError(missing) from None
    if render_problem(path, strengths.in_use(scene)):  # an F12 render without Cryptomatte: objects have strengths
        os.remove(path)
        raise UserError("the last render has no Cryptomatte object pass, which the objects' Dream Strength needs: "
                         "turn off Use Existing Render, or tick View Layer > Passes > Cryptomatte > Object and "
                         "render (F12) again")


def show_image(path: str, name: str = "Dream Result"):
    """Loads ``path`` as image ``name`` and shows it in the open Image
    Editors; with none open (and a window), opens Blender's render view for it."""
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(path, check_existing=False)
        image.name = name
    else:
        image.filepath = path
        image.reload()
    # headless (-b) Blender keeps a window that cannot show one: its render view only logs an operator error
    windows = [] if bpy.app.background else list(getattr(bpy.context.window_manager, "windows", []))
    if not _show_in_image_editors(windows, image) and windows:
        with bpy.context.temp_override(window=windows[0]):
            bpy.ops.render.view_show("INVOKE_DEFAULT")  # a new window or area, as the user's preferences say
        _show_in_image_editors(bpy.context.window_manager.windows, image)
    return image


def _show_in_image_editors(windows, image) -> bool:
    shown = False
    for window in windows:
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                shown = True
    return shown
