"""Where a frame's files are, as plain path rules (no bpy: the shells give
the Dream output folder and the scene's name): the output folder's kinds of
frame, a strip's dreamed frames, a render job's numbered patterns, and
where a reply from the server is written."""
from __future__ import annotations

import os
from typing import Union

from .shot.frame_plans import FramePlan, name_in_path
from .user_errors import UserError

# raw renders, dreamed frames, the dreams kept: scene-linear, or of the image as shown
KINDS = {"renders": ".exr", "frames": ".png", "linear": ".exr", "shown": ".png"}
FORMATS = {".png": "png", ".exr": "exr", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
           ".webp": "webp"}
PADDING = "#####"  # a frame number in our patterns, as Blender pads it


def frame_file(root: str, scene_name: str, kind: str, frame: Union[int, str], suffix: str = "") -> str:
    """A frame's file in the Dream output folder ``root``, named after the
    scene and frame; ``frame`` may be Blender's ``#####`` padding."""
    number = f"{frame:05d}" if isinstance(frame, int) else frame
    return os.path.join(root, kind, f"{name_in_path(scene_name)}_{number}{suffix}{KINDS[kind]}")


def animation_plan(root: str, scene_name: str, frames, suffix: str = "") -> list[FramePlan]:
    """Renders go to ``renders/``, dreams to ``frames/`` (and ``linear/``, see :func:`reply_as_linear`)."""
    return [FramePlan(f, frame_file(root, scene_name, "renders", f, suffix),
                      frame_file(root, scene_name, "frames", f, suffix)) for f in frames]


def strip_plan(root: str, strip_name: str, folder: str, frame_start: int, filenames) -> list[FramePlan]:
    """One plan per image of an image strip (its files in ``folder``, the
    first shown at ``frame_start``), dreamed into a folder named after it."""
    target_folder = os.path.join(root, "strips", name_in_path(strip_name))
    plans = []
    for i, filename in enumerate(filenames):
        source = os.path.normpath(os.path.join(folder, filename))
        if not os.path.isfile(source):
            raise UserError(f"frame file of strip {strip_name} is missing: {source}")
        stem = os.path.splitext(filename)[0]
        plans.append(FramePlan(frame_start + i, source, os.path.join(target_folder, stem + ".png")))
    return plans


def numbered(pattern: str, frame: int) -> str:
    """A frame's file of one of our patterns (``#####`` in the name only)."""
    folder, name = os.path.split(pattern)
    return os.path.join(folder, name.replace(PADDING, f"{frame:05d}"))


def still_path(path: str, extension: str, use_file_extension: bool) -> str:
    """Where Blender writes a still (``render(write_still=True)``): the
    output path as it is (no ``#`` expanded), with the format's extension
    when the scene adds extensions and the path lacks it."""
    if use_file_extension and not path.lower().endswith(extension.lower()):
        path += extension
    return os.path.normpath(path)


def reply_as_target(plan: FramePlan) -> tuple[str, str]:
    """The reply goes straight to the target, in the target's format."""
    return plan.target, FORMATS.get(os.path.splitext(plan.target)[1].lower(), "png")


def reply_as_shown(plan: FramePlan) -> tuple[str, str]:
    """The reply is the dream of the displayed image, a 16-bit PNG in
    ``shown/`` beside the target's folder, for Blender to write into the
    target as it is (no second view transform)."""
    folder, name = os.path.split(plan.target)
    return os.path.join(os.path.dirname(folder), "shown", os.path.splitext(name)[0] + ".png"), "png"


def reply_as_linear(plan: FramePlan) -> tuple[str, str]:
    """The reply is scene-linear EXR in ``linear/`` beside the target's
    folder (``//dream/frames/X.png`` -> ``//dream/linear/X.exr``), for Blender
    to write into the target with the scene's colour management; it is kept,
    for a resumed run to carry on from."""
    folder, name = os.path.split(plan.target)
    return os.path.join(os.path.dirname(folder), "linear", os.path.splitext(name)[0] + ".exr"), "exr"
