"""Rendering a frame into a file of our own (multilayer EXR with the Vector
pass) without changing what the user's scene writes, and showing a result."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from typing import Optional

import bpy

from . import compat, exr_check, scene_state, strengths
from .errors import UserError
from .render_thread import writes_scene
from .wire.atomic import temporary_beside
from .wire.provenance import Digests, FileRecord, Records

# Image settings copied between scenes, in the order Blender accepts them
# (the file format decides which modes and depths are valid).
FORMAT_FIELDS = ("media_type", "file_format", "color_mode", "color_depth", "compression", "quality",
                 "exr_codec", "tiff_codec", "use_preview", "color_management")


@dataclass(frozen=True)
class OutputSettings:
    """What a scene writes when it renders: the output path, its extension
    rule, the image format and the passes we switch on, by view layer."""

    filepath: str
    use_file_extension: bool
    image: dict
    passes: dict

    @classmethod
    def capture(cls, scene) -> "OutputSettings":
        settings = scene.render.image_settings
        image = {name: getattr(settings, name) for name in FORMAT_FIELDS if hasattr(settings, name)}
        return cls(scene.render.filepath, scene.render.use_file_extension, image,
                   {layer.name: {name: getattr(layer, name) for name in PASSES} for layer in scene.view_layers})

    @property
    def is_exr(self) -> bool:
        return self.image["file_format"] in ("OPEN_EXR", "OPEN_EXR_MULTILAYER")

    @property
    def is_8bit(self) -> bool:
        """Whether the files hold 8-bit levels (what Blender dithers renders for)."""
        return self.image["file_format"] not in FLOAT_FORMATS and self.image.get("color_depth", "8") in ("8", "")

    @property
    def is_movie(self) -> bool:
        return self.image.get("media_type") == "VIDEO" or self.image["file_format"] in MOVIE_FORMATS

    @writes_scene  # also called from render handlers
    def apply(self, scene) -> None:
        scene.render.filepath = self.filepath
        scene.render.use_file_extension = self.use_file_extension
        self.apply_format(scene.render.image_settings)
        for layer in scene.view_layers:
            for name, value in self.passes.get(layer.name, {}).items():
                setattr(layer, name, value)

    def apply_format(self, image_settings) -> None:
        for name, value in self.image.items():
            try:
                setattr(image_settings, name, value)
            except TypeError:  # not valid for this format (Blender reset it): keep Blender's choice
                pass


MOVIE_FORMATS = {"FFMPEG", "AVI_JPEG", "AVI_RAW"}
FLOAT_FORMATS = {"OPEN_EXR", "OPEN_EXR_MULTILAYER", "HDR"}


PASSES = ("use_pass_vector", "use_pass_cryptomatte_object")


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
        raw_output(scene, path)
        yield
    finally:
        _own_renders -= 1
        given_back(scene.name)
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


def partial_path(path: str) -> str:
    """Where Blender writes a file before it is renamed to ``path``: a hidden
    name beside it, so a crash never leaves a half-written file under the
    real one (and the next run removes what a killed one left)."""
    return temporary_beside(path)


def render_to_file(scene, frame: int, path: str) -> None:
    """Renders ``frame`` of ``scene`` into ``path``, blocking; only a
    complete, readable render is renamed into place."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scene.frame_set(frame)
    partial = partial_path(path)
    with render_output(scene, partial):
        bpy.ops.render.render(write_still=True, scene=scene.name)
    _into_place(partial, path, frame)


def _into_place(partial: str, path: str, frame: int) -> None:
    if not is_complete_render(partial):
        why = "the disk is full" if _disk_nearly_full(partial) else "the file is missing or incomplete"
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise UserError(f"Blender could not write the render of frame {frame} to {path}: {why}")
    os.replace(partial, path)


class RenderStopped(UserError):
    """The user stopped Blender's render of a frame (Esc in the render window)."""


class FrameRenderJob:
    """``frame`` of ``scene`` rendered into ``path`` by Blender's render job,
    as Render Animation renders: in Blender's render thread, so the window
    stays live (a blocking render holds it for the whole frame). Started
    here; :meth:`done` says when it is over, :meth:`finish` puts the file
    in place (or raises), :meth:`abandon` lets it end on its own. Only from
    the main thread of a window's event loop (a modal operator's timer)."""

    def __init__(self, scene, frame: int, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        scene.frame_set(frame)
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
        if not os.path.exists(self.partial) and not _disk_nearly_full(self.partial):
            raise RenderStopped(f"the render of frame {self.frame} was stopped")
        _into_place(self.partial, self.path, self.frame)

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


def is_complete_render(path: str) -> bool:
    """Whether our render at ``path`` (an EXR) is whole: one cut short by a
    full disk or a crash is rendered again."""
    return os.path.isfile(path) and exr_check.is_complete_exr(path)


def record_render(records: Records, path: str, frame: int, token: dict, chain: str, params: dict) -> FileRecord:
    """Records a render just made: the scene state it was made from
    (:mod:`.scene_state`), its digest, and the dream settings at its frame
    (so a later chunk can check a chain, or dream it again, without
    evaluating the frame)."""
    digest = exr_check.pixel_digest(path) or Digests().of(path)  # the pixels: a new render of the same is the same
    record = FileRecord("render", token["settings"], frame=frame,
                        extra={"scene": token, "digest": digest, "chain": chain, "params": params})
    records.write_file(path, record)
    return record


def current_render(records: Records, path: str, token: dict) -> Optional[FileRecord]:
    """The record of our render at ``path`` when it is still the file we
    made and the scene would render the same now, else None."""
    record = records.file(path)
    if record is None or record.made != "render" or not scene_state.matches(record.extra.get("scene"), token):
        return None
    return record


def why_not_current(records: Records, path: str, token: dict) -> Optional[str]:
    """Why the render at ``path`` is not the scene's now (None: there is none)."""
    if not os.path.exists(path):
        return None
    record = records.file(path)
    if record is None or record.made != "render":
        return "not one this add-on made, or was changed on disk since"
    recorded = record.extra.get("scene") or {}
    if recorded.get("settings") != token["settings"]:
        return "of other render settings"
    return "of the scene before it was changed" if recorded.get("session") == token["session"] \
        else "from another session, and the .blend is not the one it was made from"


def render_problem(scene, path: str) -> Optional[str]:
    """Why our existing render at ``path`` cannot be dreamed now, or None:
    cut short, or made before any object had a strength (no Cryptomatte)."""
    if not is_complete_render(path):
        return "incomplete"
    if strengths.in_use(scene) and not exr_check.has_channel(path, CRYPTOMATTE_CHANNEL):
        return "without the Cryptomatte pass the object strengths need"
    return None


CRYPTOMATTE_CHANNEL = ".CryptoObject00."


def _disk_nearly_full(path: str) -> bool:
    try:
        return shutil.disk_usage(os.path.dirname(path)).free < 1 << 20
    except OSError:
        return False


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
    if render_problem(scene, path):  # an F12 render without Cryptomatte: objects have strengths
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
    windows = list(getattr(bpy.context.window_manager, "windows", []))
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
