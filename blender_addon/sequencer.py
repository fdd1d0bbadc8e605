"""Placing dreamed frames in the Video Sequence Editor.

A scene whose sequencer holds strips renders the sequencer instead of its 3D
view (Post Processing > Sequencer is on by default), so dreamed strips never
go into the scene that was rendered: they go into a scene of their own,
"<scene> Dream", made on first use, or the scene the user picks."""
from __future__ import annotations

import os

import bpy

from . import compat
from .user_errors import UserError


def strip_scene(scene):
    """The scene whose sequencer receives ``scene``'s dreamed strips."""
    chosen = scene.dream.strip_scene
    if chosen is not None:
        return chosen
    name = f"{scene.name} Dream"
    edit = bpy.data.scenes.get(name) or _new_edit_scene(scene, name)
    scene.dream.strip_scene = edit
    return edit


def _new_edit_scene(scene, name: str):
    """An edit scene matching ``scene``'s size, rate and range. Its view
    transform is Standard: the dreamed frames are display-referred already,
    and a Filmic or AgX sequencer would tone-map them a second time."""
    edit = bpy.data.scenes.new(name)
    for attr in ("resolution_x", "resolution_y", "resolution_percentage", "fps", "fps_base"):
        setattr(edit.render, attr, getattr(scene.render, attr))
    edit.frame_start, edit.frame_end = scene.frame_start, scene.frame_end
    edit.view_settings.view_transform = "Standard"
    compat.ensure_sequence_editor(edit)
    return edit


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
        raise UserError("no dreamed frames to place in the Sequencer")
    end = frame_start + len(files) - 1
    channel = channel or free_channel(scene, frame_start, end, avoid=name, minimum=minimum)
    strips = compat.strips(scene)
    for old in [s for s in compat.all_strips(scene) if s.name == name]:
        strips.remove(old)
    strip = strips.new_image(name=name, filepath=files[0], channel=channel, frame_start=frame_start)
    for path in files[1:]:
        strip.elements.append(os.path.basename(path))
    if bpy.data.filepath:  # relative to the .blend: the project folder can move with its frames
        strip.directory = bpy.path.relpath(strip.directory)
    return strip
