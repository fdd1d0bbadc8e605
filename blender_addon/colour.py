"""Writing dreamed frames the way Blender writes renders: through the
scene's colour management (view transform, look, exposure, gamma, display)
and dither. The server dreams the scene-linear render and sends scene-linear
pixels back (EXR); Blender itself turns them into display PNGs, so a frame
dreamed at mix 0 is Blender's own written render."""
from __future__ import annotations

import os

import bpy

from .rendering import partial_path

HELPER = ".Dream Colour"  # a hidden scene that carries the look and the file format


class DisplayWriter:
    """Turns scene-linear EXR files into display-referred PNGs as ``scene``
    would write its renders. Call :meth:`close` when done (it removes the helper)."""

    def __init__(self, scene, depth: str = "8") -> None:
        self.helper = bpy.data.scenes.get(HELPER) or bpy.data.scenes.new(HELPER)
        _copy_look(scene, self.helper)
        settings = self.helper.render.image_settings
        settings.file_format = "PNG"
        own = scene.render.image_settings.color_mode
        settings.color_mode = own if own in ("BW", "RGB", "RGBA") else "RGBA"
        settings.color_depth = depth
        self.helper.render.dither_intensity = scene.render.dither_intensity

    def write(self, linear_exr: str, target: str) -> None:
        """Writes ``target`` atomically from ``linear_exr`` (then removed)."""
        image = bpy.data.images.load(linear_exr, check_existing=False)
        partial = partial_path(target)
        try:
            image.save_render(partial, scene=self.helper)
        finally:
            bpy.data.images.remove(image)
        os.replace(partial, target)
        os.remove(linear_exr)
        try:
            os.rmdir(os.path.dirname(linear_exr))  # leave no empty hidden folder behind
        except OSError:
            pass  # other frames' dreams are still on their way

    def close(self) -> None:
        helper = bpy.data.scenes.get(HELPER)
        if helper is not None:
            bpy.data.scenes.remove(helper)


def _copy_look(source, helper) -> None:
    view, display = source.view_settings, source.display_settings
    helper.display_settings.display_device = display.display_device
    helper.view_settings.view_transform = view.view_transform
    helper.view_settings.look = view.look
    helper.view_settings.exposure = view.exposure
    helper.view_settings.gamma = view.gamma
    helper.view_settings.use_curve_mapping = False  # curves are not copied: written without them
    helper.sequencer_colorspace_settings.name = source.sequencer_colorspace_settings.name
