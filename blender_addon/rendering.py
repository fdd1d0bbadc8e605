"""Rendering a frame into a file of our own (multilayer EXR with the Vector
pass) without changing what the user's scene writes, and showing a result."""
from __future__ import annotations

import contextlib
import os

import bpy

from . import compat
from .errors import DreamError


@contextlib.contextmanager
def render_output(scene, path: str):
    """Renders go to ``path`` as multilayer EXR with the Vector pass; the
    user's own output settings come back afterwards."""
    render = scene.render
    layer = bpy.context.view_layer if bpy.context.view_layer.id_data == scene else scene.view_layers[0]
    saved = (render.filepath, render.use_file_extension, render.image_settings.file_format,
             render.image_settings.color_depth, layer.use_pass_vector,
             getattr(render.image_settings, "media_type", None))
    try:
        render.filepath = path
        render.use_file_extension = False
        compat.set_multilayer_exr(render.image_settings)
        layer.use_pass_vector = True
        yield
    finally:
        if saved[5] is not None:
            render.image_settings.media_type = saved[5]
        render.filepath, render.use_file_extension = saved[0], saved[1]
        render.image_settings.file_format, render.image_settings.color_depth = saved[2], saved[3]
        layer.use_pass_vector = saved[4]


def partial_path(path: str) -> str:
    """Where Blender writes a file before it is renamed to ``path``: a hidden
    name beside it, so a crash never leaves a half-written file under the real one."""
    return os.path.join(os.path.dirname(path), ".partial_" + os.path.basename(path))


def render_to_file(scene, frame: int, path: str) -> None:
    """Renders ``frame`` of ``scene`` into ``path`` (written atomically by Blender's own rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scene.frame_set(frame)
    partial = partial_path(path)
    with render_output(scene, partial):
        bpy.ops.render.render(write_still=True, scene=scene.name)
    if not os.path.exists(partial):
        raise DreamError(f"Blender did not write the render of frame {frame} to {partial}")
    os.replace(partial, path)


def show_image(path: str, name: str = "Dream Result"):
    """Loads ``path`` as image ``name`` and shows it in any open Image Editor."""
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(path, check_existing=False)
        image.name = name
    else:
        image.filepath = path
        image.reload()
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
    return image
