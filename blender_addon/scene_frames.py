"""Where a run's frames come from and go to, and the (animatable) settings
of each frame: plain functions the operators call, and the tests too."""
from __future__ import annotations

import os

import bpy

from . import compat, frame_paths, scene_state, strengths
from .shot.frame_plans import FramePlan
from .shot.provenance import FOLDER, Records
from .user_errors import UserError


def output_root(scene) -> str:
    """The absolute, persistent output folder of ``scene.dream.output_dir``."""
    raw = scene.dream.output_dir or "//dream/"
    if raw.startswith("//") and not bpy.data.filepath:
        raise UserError("save the .blend file first, or set an absolute Dream output folder: "
                         "dreamed frames are kept next to the .blend")
    return os.path.normpath(bpy.path.abspath(raw))


def records(scene) -> Records:
    """The provenance records of what the add-on makes for ``scene`` (see shot.provenance)."""
    return Records(os.path.join(output_root(scene), FOLDER))


def frame_file(scene, kind: str, frame, suffix: str = "") -> str:
    """A frame's file in the Dream output folder (see frame_paths.frame_file)."""
    return frame_paths.frame_file(output_root(scene), scene.name, kind, frame, suffix)


def animation_plan(scene, frames: range, suffix: str = "") -> list[FramePlan]:
    """Renders go to ``renders/``, dreams to ``frames/`` (see frame_paths.animation_plan)."""
    return frame_paths.animation_plan(output_root(scene), scene.name, frames, suffix)


def strip_plan(scene, strip) -> list[FramePlan]:
    """One plan per image of an image strip, dreamed into a folder named after it."""
    if strip is None or strip.type != "IMAGE":
        raise UserError("select an image strip (a rendered frame sequence) in the Sequencer")
    return frame_paths.strip_plan(output_root(scene), strip.name, bpy.path.abspath(strip.directory),
                                  int(strip.frame_start), [element.filename for element in strip.elements])


def render_step(scene) -> int:
    """Render Animation's step between frames (Blender allows a Frame Step of 0: see :func:`render_end`)."""
    return max(1, scene.frame_step)


def render_end(scene) -> int:
    """The last frame Render Animation may render: with a Frame Step of 0
    (allowed) Blender renders the first frame only."""
    return scene.frame_end if scene.frame_step >= 1 else scene.frame_start


def render_frames(scene) -> range:
    """The frames Render Animation renders."""
    return range(scene.frame_start, render_end(scene) + 1, render_step(scene))


def output_size(scene) -> tuple[int, int]:
    """The rendered frame's size in pixels."""
    render = scene.render
    scale = render.resolution_percentage / 100
    return round(render.resolution_x * scale), round(render.resolution_y * scale)


def frame_params(scene, frame: int, objects: bool = True) -> dict:
    """The dream settings at ``frame``: keyframed values are evaluated there
    (always set, even on the current frame: a keyed value edited by hand
    shows until the animation is evaluated again, as a render would)."""
    scene_state.move_to_frame(scene, frame)
    return dream_params(scene, objects)


def dream_params(scene, objects: bool = True) -> dict:
    """The dream settings at the current frame; with ``objects`` (frames we
    rendered, which carry the Cryptomatte pass) the objects' strengths too."""
    params = scene.dream.to_params()
    object_strengths = strengths.strength_params(scene) if objects else None
    if object_strengths is not None:
        if not compat.engine_has_cryptomatte(scene):
            raise UserError(f"objects have a Dream Strength, which needs the Cryptomatte pass of Cycles or Eevee; "
                             f"the render engine {scene.render.engine} writes none (or clear the strengths)")
        params["objects"] = object_strengths
    return params
