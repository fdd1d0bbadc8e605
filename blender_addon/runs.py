"""Dream Animation's Blender shell: a :class:`FrameRun` brings every
planned frame to a dreamed file on disk that is the dream of the scene as
it is now, rendering frames on the main thread while a worker thread
dreams. What it keeps, renders, sends and writes is decided by
:class:`~.frame_walk.FrameWalk` (no bpy); this shell gathers the scene's
settings, renders frames (blocking, or in Blender's render job with a
window open) and writes the dreams through the scene's colour management.
Operators drive it with :meth:`~.frame_walk.FrameWalk.tick`, modally (a
timer) or blocking (scripts, ``blender --background``)."""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Optional

import bpy

from . import colour_management, rendering, scene_frames, scene_state, strengths
from .dreaming import DreamWorker
from .frame_walk import FrameWalk
from .render_records import render_verdict
from .shot.frame_plans import FramePlan
from .user_errors import UserError


class FrameRun(FrameWalk):
    """The scene is looked up by name on every tick: a reference held
    across ticks can be invalidated by undo."""

    def __init__(self, scene, frame_plans: list[FramePlan], job: str, link, render_missing: bool = True,
                 redream: bool = False, colour_managed: bool = False, rerender: bool = False) -> None:
        """``colour_managed``: the sources are scene-linear renders; their
        dreams are written through the scene's colour management, as Blender
        writes renders (the server replies in EXR, Blender makes the PNG)."""
        self.scene_name = scene.name
        plans = [replace(p, params=scene_frames.frame_params(scene, p.frame, objects=render_missing))
                 for p in frame_plans]
        records = scene_frames.records(scene)
        token = scene_state.token(scene) if render_missing else None
        shown = colour_management.ShownImages(scene, os.path.join(records.root, "shown_input")) \
            if colour_managed and scene.dream.colour_space == "SHOWN" else None  # the dream acts on what is seen
        display = colour_management.DisplayWriter(scene, shown=shown is not None) if colour_managed else None
        # the dreams are written to 8-bit PNGs: a dream of the image as shown is rounded with Blender's dither
        dither = colour_management.dither_of(scene, eight_bit=True) if shown else None
        width, height = scene_frames.output_size(scene)
        super().__init__(plans, records,
                         lambda reply, kept, written_as: DreamWorker(link, job, reply, kept, written_as),
                         token=token, pixels=width * height, render_missing=render_missing, redream=redream,
                         rerender=rerender, display=display, shown=shown, dither=dither)

    @property
    def scene(self):
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise UserError(f"the scene {self.scene_name!r} is gone (renamed or deleted) while dreaming")
        return scene

    def _render_path(self, frame: int) -> str:
        return scene_frames.frame_file(self.scene, "renders", frame)

    def _input(self, plan: FramePlan) -> tuple[Optional[str], bool]:
        scene = self.scene
        if not self.render_missing:
            return self._given_input(plan), False
        if self.job is not None:
            if not self.job.done():
                return None, False
            job, self.job = self.job, None
            job.finish()
            return self._recorded(plan), True
        verdict = render_verdict(self.records, plan.source, self.token, rerender=self.rerender,
                                 needs_cryptomatte=strengths.in_use(scene))
        if verdict.digest is not None:
            return verdict.digest, False
        self._say_once(plan.frame, verdict)
        self.worker.prepare(plan.params, *scene_frames.output_size(scene))  # while the first frame renders
        if self.render_in_job:
            self.job = rendering.FrameRenderJob(scene, plan.frame, plan.source)
            return None, False
        rendering.render_to_file(scene, plan.frame, plan.source)
        return self._recorded(plan), True
