"""One Dream on Render job's Blender shell (:mod:`.on_render` has Blender's
handlers): the user's output settings, where Blender itself would write
each frame, the scene's settings at a frame, Overwrite off and
Placeholders, and the colour writers. What the job keeps, dreams, holds for
a seam and writes is decided by :class:`~.chunk_dreaming.ChunkDreaming`
(no bpy), which this class extends with what only Blender knows."""
from __future__ import annotations

import os
import sys

import bpy

from . import colour_management, rendering, scene_frames, scene_state
from .chunk_dreaming import ChunkDreaming
from .command_line import write_from_argument
from .dreaming import DreamWorker
from .frame_paths import still_path
from .output_settings import OutputSettings
from .render_chunk import output_problem, plan_render_job
from .render_thread import writes_scene
from .user_errors import UserError


class RenderDreaming(ChunkDreaming):
    """One render job's dreaming, for Blender's render handlers."""

    def __init__(self, scene, link, job: str) -> None:
        self.user_output = OutputSettings.capture(scene)
        problem = output_problem(self.user_output)
        if problem:
            raise UserError(problem)
        scene_frames.dream_params(scene)  # settings that cannot be dreamed are refused before the first frame
        root = scene_frames.output_root(scene)
        token = scene_state.token(scene)
        view = colour_management.view_of(scene) if scene.dream.colour_space == "SHOWN" else None
        width, height = scene_frames.output_size(scene)
        super().__init__(scene.name, root, token,
                         lambda reply, records, written_as: DreamWorker(link, job, reply, records, written_as),
                         view=view, exr_output=self.user_output.is_exr,
                         dither=colour_management.dither_of(scene, self.user_output.is_8bit),
                         write_from=write_from_argument(sys.argv), job_start=scene.frame_start,
                         pixels=width * height)
        if bpy.app.background and scene.render.use_overwrite:  # a farm chunk: refused before it renders a frame
            self._plan(scene, scene.frame_start)
        rendering.raw_output(scene, self.job_pattern)
        self.skip_existing(scene, {*scene_frames.render_frames(scene), scene.frame_current})

    # -- what only Blender knows (see ChunkDreaming)
    def _begin(self, scene, frame: int) -> None:
        self.begin(self._plan(scene, frame))

    def _plan(self, scene, frame: int):
        step = scene_frames.render_step(scene)
        saved = scene_state.saved_range(scene) if bpy.app.background else (scene.frame_start, scene.frame_end, step)
        return plan_render_job(frame, end=scene_frames.render_end(scene), step=step, saved=saved,
                               job_start=self.job_start, farm=bool(bpy.app.background and scene.render.use_overwrite),
                               write_from=self.write_from, seam_fade=scene.dream.seam_fade)

    def _dream_params(self, scene) -> dict:
        return scene_frames.dream_params(scene)

    def target_paths(self, scene, frames, still: bool = False) -> list[str]:
        """Where Blender itself would write ``frames``: the user's path, padding
        and extension; a still (``render(write_still=True)``) under the
        pattern's literal name, as Blender writes stills."""
        if not frames:
            return []
        self.user_output.apply(scene)
        try:
            if not still:
                return [scene.render.frame_path(frame=frame) for frame in frames]
            return [still_path(bpy.path.abspath(scene.render.filepath), scene.render.file_extension,
                               scene.render.use_file_extension)]
        finally:
            if not self.ended:  # after the render (seams) the user's settings stay
                rendering.raw_output(scene, self.job_pattern)

    def _before_next(self, scene, frame: int) -> None:
        self.skip_existing(scene, [frame + scene_frames.render_step(scene)])

    def _shown_of(self, source: str) -> str:
        if self.shown is None:
            scene = bpy.data.scenes.get(self.scene_name)
            self.shown = colour_management.ShownImages(scene, os.path.join(self.records.root, "shown_input"))
        return self.shown.of(source)

    def _has_scene(self) -> bool:
        return bpy.data.scenes.get(self.scene_name) is not None

    def _display_writer(self):
        if self.writer is None:
            self.writer = colour_management.DisplayWriter(bpy.data.scenes[self.scene_name], self.user_output,
                                                          shown=self.as_shown)
        return self.writer

    def send_seams(self) -> None:
        scene = bpy.data.scenes.get(self.scene_name)
        self._send_seams(scene, scene.dream.seam_fade if scene is not None else 0)

    # -- Overwrite off, Placeholders
    def skip_existing(self, scene, frames) -> None:
        """Overwrite off: frames whose user file exists are left alone (see ChunkDreaming.leave_alone)."""
        if scene.render.use_overwrite:
            return
        frames = sorted(frames)
        self.leave_alone(frames, self.target_paths(scene, frames))

    # -- Blender's render job
    @writes_scene
    def frame_starts(self, scene) -> None:
        """Placeholders: the user's file of the frame about to render is
        made empty now, so other machines (Overwrite off) leave it alone."""
        frame = scene.frame_current
        if self.plan is None:
            self._begin(scene, frame)
        # the server loads the model and compiles for this size while Blender renders the first frame
        self.worker.prepare(scene.dream.to_params(), *scene_frames.output_size(scene))
        if scene.render.use_placeholder and self.needs_placeholder(frame):
            self.place_holder(self.target_path(scene, frame))

    def frame_written(self, scene) -> None:
        """Blender wrote the raw render of the current frame into this job's folder."""
        self.rendered(scene, scene.frame_current)

    def render_ended(self, scene, cancelled: bool = False) -> None:
        """Blender's render job is over: the user's settings come back (see ChunkDreaming.job_ended)."""
        self.job_ended(cancelled)
        self.user_output.apply(scene)

    def restore_user_output(self) -> None:
        """The user's output settings back on the scene (if it still exists)."""
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is not None:
            self.user_output.apply(scene)

