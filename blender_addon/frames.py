"""Blender-side plain functions: where frames go, rendering a frame to a
file, reading the (animatable) settings of a frame, placing strips.
Operators call these; tests call them too."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import bpy

from . import compat


class DreamError(Exception):
    """A problem to report to the user in one sentence."""


@dataclass
class FramePlan:
    frame: int
    source: str  # the render (or the strip's image) that gets dreamed
    target: str  # the dreamed frame

    @property
    def done(self) -> bool:
        return os.path.exists(self.target)


def resume_point(plans: list[FramePlan], todo: list[FramePlan]) -> tuple[str, str] | None:
    """The render and dream of the frame before the first one to do, when
    both are on disk: a resumed run sends them, so the sequence carries on
    from there even if the server has lost the job (a crash, a restart)."""
    if not todo:
        return None
    index = plans.index(todo[0])
    before = plans[index - 1] if index > 0 else None
    if before is None or before.frame != todo[0].frame - 1 or not before.done or not os.path.exists(before.source):
        return None
    return before.source, before.target


def output_root(scene) -> str:
    """The absolute, persistent output folder of ``scene.dream.output_dir``."""
    raw = scene.dream.output_dir or "//dream/"
    if raw.startswith("//") and not bpy.data.filepath:
        raise DreamError("save the .blend file first, or set an absolute Dream output folder: "
                         "dreamed frames are kept next to the .blend")
    return os.path.normpath(bpy.path.abspath(raw))


def animation_plan(scene, frames: range, suffix: str = "") -> list[FramePlan]:
    """Renders go to ``renders/``, dreams to ``frames/``, named after the scene and frame."""
    root = output_root(scene)
    name = bpy.path.clean_name(scene.name)
    return [FramePlan(f, os.path.join(root, "renders", f"{name}_{f:05d}{suffix}.exr"),
                      os.path.join(root, "frames", f"{name}_{f:05d}{suffix}.png")) for f in frames]


def strip_plan(scene, strip) -> list[FramePlan]:
    """One plan per image of an image strip, dreamed into a folder named after it."""
    if strip is None or strip.type != "IMAGE":
        raise DreamError("select an image strip (a rendered frame sequence) in the Sequencer")
    folder = bpy.path.abspath(strip.directory)
    root = os.path.join(output_root(scene), "strips", bpy.path.clean_name(strip.name))
    plans = []
    for i, element in enumerate(strip.elements):
        source = os.path.normpath(os.path.join(folder, element.filename))
        if not os.path.isfile(source):
            raise DreamError(f"frame file of strip {strip.name} is missing: {source}")
        stem = os.path.splitext(element.filename)[0]
        plans.append(FramePlan(int(strip.frame_start) + i, source, os.path.join(root, stem + ".png")))
    return plans


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


def render_to_file(scene, frame: int, path: str) -> None:
    """Renders ``frame`` of ``scene`` into ``path`` (written atomically by Blender's own rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scene.frame_set(frame)
    # written under a hidden name, renamed when complete: a crash leaves no half frame
    partial = os.path.join(os.path.dirname(path), ".partial_" + os.path.basename(path))
    with render_output(scene, partial):
        bpy.ops.render.render(write_still=True, scene=scene.name)
    if not os.path.exists(partial):
        raise DreamError(f"Blender did not write the render of frame {frame} to {partial}")
    os.replace(partial, path)


def frame_params(scene, frame: int) -> dict:
    """The dream settings at ``frame``: keyframed values are evaluated there."""
    if scene.frame_current != frame:
        scene.frame_set(frame)
    return scene.dream.to_params()


def free_channel(scene, start: int, end: int, avoid: str = "", minimum: int = 1) -> int:
    """The lowest channel from ``minimum`` with no strip (but ``avoid``) overlapping [start, end]."""
    busy = {s.channel for s in compat.all_strips(scene)
            if s.name != avoid and s.frame_final_start <= end and s.frame_final_end > start}
    channel = minimum
    while channel in busy:
        channel += 1
    return channel


def place_strip(scene, name: str, files: list[str], frame_start: int, channel: int = 0, minimum: int = 1):
    """An image strip showing ``files`` from ``frame_start`` on ``channel``
    (0: the first free one from ``minimum``); a strip of the same name from
    an earlier run is replaced, not duplicated."""
    if not files:
        raise DreamError("no dreamed frames to place in the Sequencer")
    end = frame_start + len(files) - 1
    channel = channel or free_channel(scene, frame_start, end, avoid=name, minimum=minimum)
    strips = compat.strips(scene)
    for old in [s for s in compat.all_strips(scene) if s.name == name]:
        strips.remove(old)
    strip = strips.new_image(name=name, filepath=files[0], channel=channel, frame_start=frame_start)
    for path in files[1:]:
        strip.elements.append(os.path.basename(path))
    return strip


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
