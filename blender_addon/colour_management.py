"""Writing dreamed frames the way Blender writes renders: through the
scene's colour management (view transform, look, exposure, gamma, display)
and dither. The server dreams the scene-linear render and sends scene-linear
pixels back (EXR); Blender itself turns them into display PNGs, so a frame
dreamed at mix 0 is Blender's own written render."""
from __future__ import annotations

import os
import uuid
from typing import Optional

import bpy

from . import compat, scene_state
from .dream_provenance import dither_for
from .dreaming import why_not_written
from .output_settings import FORMAT_FIELDS, OutputSettings
from .render_records import partial_path
from .shot.provenance import digest_of
from .user_errors import UserError

HELPER = ".Dream Colour"  # hidden scenes that carry the look and the file format, one per writer
SHOWN = ("PNG", "16", "RGBA")  # a render as the view transform shows it, sent to be dreamed (no dither)
_open: set[str] = set()  # the helpers of writers not yet closed


class DisplayWriter:
    """Turns scene-linear EXR files into the files ``scene`` would write
    from its renders: PNGs by default, or the format of ``output`` (the
    user's own output settings: PNG 8/16, JPEG, TIFF, OpenEXR...). Each
    writer has a helper scene of its own (Dream on Render and Dream
    Animation may write at once), looked up by name at each use (undo can
    free a scene held across a timer). Call :meth:`close` when done (it
    removes the helper). ``digest``: what the written files depend on
    besides the pixels (format, look), for their records.

    ``shown``: the images it writes are already as the view transform shows
    them (a dream of the displayed image, display-encoded): they are written
    with no second view transform. ``image_format`` (file format, depth,
    colour mode) and ``dither`` replace the output's and the scene's."""

    def __init__(self, scene, output: Optional[OutputSettings] = None, *, shown: bool = False,
                 image_format: Optional[tuple[str, str, str]] = None, dither: Optional[float] = None) -> None:
        # a helper scene and its colour settings update every material: no edit of the user's scene, which
        # counted as one made the next run render every frame again
        with scene_state.own_changes(bpy.context):
            self._set_up(scene, output, shown, image_format, dither)

    def _set_up(self, scene, output: Optional[OutputSettings], shown: bool,
                image_format: Optional[tuple[str, str, str]], dither: Optional[float]) -> None:
        helper = _free_helper()
        self.name = helper.name
        _open.add(self.name)
        settings = helper.render.image_settings
        own = scene.render.image_settings
        if image_format is not None:
            settings.file_format, settings.color_depth, settings.color_mode = image_format
        elif output is None:
            settings.file_format = "PNG"
            settings.color_mode = own.color_mode if own.color_mode in ("BW", "RGB", "RGBA") else "RGBA"
            settings.color_depth = "8"
        else:
            output.apply_format(settings)
        if getattr(own, "color_management", "FOLLOW_SCENE") == "OVERRIDE":  # the output's own look wins
            _copy_look(own, helper)
            settings.color_management = "FOLLOW_SCENE"
        else:
            _copy_look(scene, helper)
        if shown:  # the display device stays; the view is the plain one, which leaves display images as they are
            helper.view_settings.view_transform, helper.view_settings.look = "Standard", "None"
            helper.view_settings.exposure, helper.view_settings.gamma = 0.0, 1.0
            dither = 0.0 if dither is None else dither  # the server rounded them with the scene's dither
        helper.render.dither_intensity = scene.render.dither_intensity if dither is None else dither
        view, display = helper.view_settings, helper.display_settings
        self.digest = digest_of([[getattr(settings, n, None) for n in FORMAT_FIELDS], view.view_transform, view.look,
                                 round(view.exposure, 6), round(view.gamma, 6), display.display_device,
                                 round(helper.render.dither_intensity, 6)])

    @property
    def helper(self):
        helper = bpy.data.scenes.get(self.name)
        if helper is None:
            raise UserError(f"the helper scene {self.name!r} that writes dreamed frames was removed")
        return helper

    def write(self, linear_exr: str, target: str) -> None:
        """Writes ``target`` atomically from ``linear_exr`` (kept: a resumed
        run carries the dream on from it); a :class:`UserError` says why not."""
        self.write_from(lambda: bpy.data.images.load(linear_exr, check_existing=False), target)

    def write_from(self, load, target: str) -> None:
        """Writes ``target`` atomically from the scene-linear image ``load()``
        returns (removed afterwards); a :class:`UserError` says why not."""
        partial = partial_path(target)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with scene_state.own_changes(bpy.context):  # an image removed updates every object: no edit
                image = load()
                try:
                    image.save_render(partial, scene=self.helper)
                finally:
                    bpy.data.images.remove(image)
            os.replace(partial, target)
        except (OSError, RuntimeError) as err:
            raise UserError(f"cannot write the dreamed frame {target}: {why_not_written(err, partial)}") from None

    def release(self) -> None:
        """Done with, inside a render handler: the helper scene is left for
        :func:`remove_helpers` (removing a scene there crashes Blender 3.4)."""
        _open.discard(self.name)

    def close(self) -> None:
        self.release()
        helper = bpy.data.scenes.get(self.name)
        if helper is not None:
            with scene_state.own_changes(bpy.context):
                bpy.data.scenes.remove(helper)


class ShownImages:
    """Renders as the scene's view transform shows them (16-bit PNG, no
    dither), for the dream to act on what the user sees; ``digest`` says
    which view (it is part of what a dream of them depends on)."""

    def __init__(self, scene, folder: str) -> None:
        self.writer = DisplayWriter(scene, image_format=SHOWN, dither=0.0)
        self.digest = view_of(scene)
        self.folder = folder

    def of(self, render: str) -> str:
        """The shown image of the scene-linear ``render``, made now."""
        path = os.path.join(self.folder, os.path.splitext(os.path.basename(render))[0] + ".png")
        self.writer.write(render, path)
        return path

    def release(self) -> None:
        self.writer.release()

    def close(self) -> None:
        self.writer.close()


def view_of(scene) -> str:
    """A digest of how ``scene`` shows its renders (what a dream of the shown
    image depends on besides the render): the view a writer copies."""
    own = scene.render.image_settings
    source = own if getattr(own, "color_management", "FOLLOW_SCENE") == "OVERRIDE" else scene
    view = source.view_settings
    return digest_of([view.view_transform, view.look, round(view.exposure, 6), round(view.gamma, 6),
                      source.display_settings.display_device])


def dither_of(scene, eight_bit: bool) -> Optional[dict]:
    """How a dream of the image as shown is rounded for an 8-bit file of
    ``scene`` (see dream_provenance.dither_for). None: no dither."""
    return dither_for(scene.render.dither_intensity, eight_bit, compat.DITHER_PATTERN)


_fresh_format: dict = {}  # a new scene's image settings, given back to a helper taken again


def _free_helper():
    """A helper scene no writer holds (one a render handler left, see
    :meth:`DisplayWriter.release`) taken again with a new scene's image
    settings, else a new one: scripts that render again and again with
    Dream on Render gather no scenes, and no scene is removed in a handler
    (that crashes Blender 3.4, and counts as an edit of the user's data)."""
    free = [s for s in bpy.data.scenes if s.name.startswith(HELPER) and s.name not in _open]
    if not free:
        helper = bpy.data.scenes.new(f"{HELPER} {uuid.uuid4().hex[:8]}")
        settings = helper.render.image_settings
        _fresh_format.setdefault("fields", [(n, getattr(settings, n)) for n in FORMAT_FIELDS if hasattr(settings, n)])
        return helper
    helper = free[0]
    for name, value in _fresh_format.get("fields", ()):
        try:
            setattr(helper.render.image_settings, name, value)
        except TypeError:  # not valid for the format set so far: set by the writer anyway
            pass
    return helper


def forget_writers() -> None:
    """A file was loaded: no writer of the session before holds a helper."""
    _open.clear()


def remove_helpers() -> None:
    """Removes the helper scenes of writers that are gone (closed inside a
    render handler, or before a crash). Never from a render handler:
    Blender 3.4 crashes when a scene is removed while its render job winds down."""
    with scene_state.own_changes(bpy.context):  # evaluated once for them all
        for helper in [s for s in bpy.data.scenes if s.name.startswith(HELPER) and s.name not in _open]:
            bpy.data.scenes.remove(helper)


def is_helper(scene) -> bool:
    return scene.name.startswith(HELPER)


def _copy_look(source, helper) -> None:
    """``source``: a scene, or image settings with their own colour management."""
    view, display = source.view_settings, source.display_settings
    helper.display_settings.display_device = display.display_device
    helper.view_settings.view_transform = view.view_transform
    helper.view_settings.look = view.look
    helper.view_settings.exposure = view.exposure
    helper.view_settings.gamma = view.gamma
    helper.view_settings.use_curve_mapping = False  # curves are not copied: written without them
    if hasattr(source, "sequencer_colorspace_settings"):
        helper.sequencer_colorspace_settings.name = source.sequencer_colorspace_settings.name
