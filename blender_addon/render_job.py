"""One Dream on Render job (:mod:`.on_render` has Blender's handlers): the
user's output settings, the chunk's plan and chain, the worker, and the
frames submitted and written.

Blender renders into a folder of the job's own, so whatever it writes there
this job rendered: an animation frame under its number, a still under the
pattern's literal name. Each frame is kept with its record and walked as the
shot planner says (:mod:`.wire.shots`): kept when its dream is current and
carries the chain on, else dreamed. The chunk is known at its first frame;
it carries on exactly from a current frame before it, or starts its own
chain and holds its first *Seam Fade* frames until the chunk before is
there. Overwrite off and Placeholders act on the user's files, as Blender's
own rule does on the files it renders to."""
from __future__ import annotations

import os
import queue
import shutil
import sys
import tempfile
from dataclasses import replace
from typing import Optional

import bpy

from . import colour_management, rendering, scene_frames, scene_state
from .dreaming import DreamWorker, FrameDone, FrameFailed, Job, RunCancelled
from .errors import UserError
from .render_thread import writes_scene
from .rendering import OutputSettings
from .wire.atomic import owned_prefix, sweep_once
from .wire.plans import FramePlan
from .wire.provenance import START, FileRecord, chain_settings, digest_of, file_stat
from .wire.shots import ChunkPlan, Walk, checkpoint_every, plan_chunk, seam_to_merge, state_to_keep

MOVIE_ERROR = ("Dream on Render writes image files, not movies: set the output's file format to an image "
               "format (PNG, JPEG, TIFF or OpenEXR), then make the movie from the dreamed frames")


class RenderDreaming:
    """One render job's dreaming: the user's output settings, the chunk's
    plan and chain, the worker, and the frames submitted and written."""

    def __init__(self, scene, link, job: str) -> None:
        self.scene_name = scene.name
        self.user_output = OutputSettings.capture(scene)
        if self.user_output.is_movie:
            raise UserError(MOVIE_ERROR)
        scene_frames.dream_params(scene)  # settings that cannot be dreamed are refused before the first frame
        self.records = scene_frames.records(scene)
        self.token = scene_state.token(scene)
        self.raw_pattern = scene_frames.frame_file(scene, "renders", "#####")  # kept, as Dream Animation's
        # the dream acts on the render as shown (as a 16-bit PNG back, written as it is; EXR output: carried back
        # to scene light), or on its light (scene-linear EXR back, written through the view transform)
        self.view = colour_management.view_of(scene) if scene.dream.colour_space == "SHOWN" else None
        self.as_shown = self.view is not None and not self.user_output.is_exr
        self.dream_pattern = scene_frames.frame_file(scene, "shown" if self.as_shown else "linear", "#####")
        self.dither = colour_management.dither_of(scene, self.user_output.is_8bit) if self.as_shown else None
        self.shown: Optional[colour_management.ShownImages] = None  # made on the main thread, at the first frame
        self.pending: list[Job] = []  # jobs for the worker, sent from the main thread (shown images made there)
        root = scene_frames.output_root(scene)
        os.makedirs(root, exist_ok=True)
        sweep_once(root)  # a killed job's folder goes
        self.job_dir = tempfile.mkdtemp(prefix=owned_prefix() + "render_", dir=root)  # what this job rendered
        self.job_pattern = os.path.join(self.job_dir, os.path.basename(self.raw_pattern))
        self.write_from = write_from_argument()
        self.job_start = scene.frame_start  # -s A: a farm's chunk starts here
        self.plan: Optional[ChunkPlan] = None  # known at the first frame Blender renders (-a, -f N, -s A -e B)
        self.walk = Walk()
        self.carries_on = False
        self.last: Optional[int] = None  # the last frame Blender rendered
        self.inputs: dict[int, str] = {}  # this job's renders' digests, by frame
        self.chains: dict[int, str] = {}  # and the settings the chain carries there
        self.worker = DreamWorker(link, job, self._reply, self.records, self._written_as)
        self.every = checkpoint_every(scene_frames.output_size(scene)[0] * scene_frames.output_size(scene)[1])
        self.writer: Optional[colour_management.DisplayWriter] = None
        self.sent: dict[int, tuple] = {}  # frame -> (plan, role: write, held, blend or still, and a blend's links)
        self.submitted = self.prerolled = self.dreams = 0  # frames whose dream is awaited, warmed, sent
        self.counts = {"write": 0, "held": 0, "blend": 0, "still": 0, "kept": 0}  # frames written, by role
        self.rewritten = 0  # of the kept frames, those whose file was written again (other colour or file settings)
        self.merged: list[int] = []
        self.states_asked: set[str] = set()  # links whose state this job's dreams keep
        self.placeholders: list[str] = []  # user files this job touched as Blender's placeholders
        self.error: Optional[str] = None
        self.ended = False  # Blender's render job is over; frames may still be dreaming
        self.cancelled = False
        self.seams_sent = False
        rendering.raw_output(scene, self.job_pattern)
        self.skip_existing(scene, {*range(scene.frame_start, scene.frame_end + 1, scene.frame_step),
                                   scene.frame_current})

    # -- the chunk
    def _begin(self, scene, frame: int) -> None:
        """The first frame Blender renders: the job's plan. Blender renders
        from ``frame`` on (``-f N``: that frame alone, ``-a``: to the end of the
        range, past the files Overwrite off leaves alone). The shot is the
        range saved in the .blend; a farm renders a *chunk* of it (``-s A -e
        B``, the job's range starting after the shot's), which may have a
        pre-roll (``--dream-write-from``) and, if it cannot carry on from the
        chunk before, holds its first Seam Fade frames for the seam. Any other
        render (with a window open, ``-f N``, Overwrite off) writes every frame
        it dreams: it carries on from the frame before when that is current,
        else starts a chain there."""
        step = scene.frame_step
        saved = scene_state.saved_range(scene) if bpy.app.background else (scene.frame_start, scene.frame_end, step)
        last = max(frame, scene.frame_end)
        shot = sorted(set(range(saved[0], saved[1] + 1, step)) | set(range(frame, last + 1, step)))
        chunk = bpy.app.background and self.job_start > saved[0] and scene.render.use_overwrite
        first = self.write_from if self.write_from is not None else self.job_start if chunk else frame
        if not frame <= first <= last:
            raise UserError(f"{WRITE_FROM} {first} is outside the frames rendered ({frame}-{last})")
        preroll = sum(frame <= f < first for f in shot)
        self.plan = plan_chunk(shot, first, last, preroll=preroll, fade=scene.dream.seam_fade if chunk else 0)
        start = self._carried_from()
        if start is not None:
            self.plan = plan_chunk(shot, first, last, carries_on=True)
            self.walk, self.carries_on = Walk(start, self.records.link, self.records.has_state), True
        else:
            self.walk = Walk(START, self.records.link, self.records.has_state)

    def _carried_from(self) -> Optional[str]:
        """The link this chunk carries on from: the frame before it, dreamed
        with the settings it has now, current back to its chain's start."""
        before = self.plan.before(self.plan.frames[0])
        return self.current_dream(before) if before is not None else None

    def current_dream(self, frame: int) -> Optional[str]:
        """The link of the frame's dream on disk (see dream_path) when it is the
        dream of the scene as it is now (its render's record says what the
        settings were at that frame: no frame is evaluated during a render)."""
        record = self.records.file(self.dream_path(frame))
        render = rendering.current_render(self.records, self.raw_path(frame), self.token)
        if record is None or record.link is None or render is None \
                or record.settings != digest_of(self.provenance(render.extra.get("params"))):
            return None
        return record.link if self.records.chain_is_current(record.link, self.is_current) else None

    def is_current(self, made) -> bool:
        """A link's render and settings are the scene's now (its render's record says)."""
        if made.frame in self.inputs:
            return made.input == self.inputs[made.frame] and made.chain == self.chains[made.frame]
        record = rendering.current_render(self.records, self.raw_path(made.frame), self.token)
        return record is not None and made.input == record.extra.get("digest") \
            and made.chain == record.extra.get("chain")

    # -- paths
    def raw_path(self, frame: int) -> str:
        return _numbered(self.raw_pattern, frame)

    def dream_path(self, frame: int) -> str:
        """Where the frame's dream is kept (the chain's record is on it)."""
        return _numbered(self.dream_pattern, frame)

    def provenance(self, params: Optional[dict]) -> dict:
        """What a dream depends on besides its render (see colour_management.dreamed_as)."""
        return colour_management.dreamed_as(params or {}, self.view, self.dither)

    def held_path(self, frame: int) -> str:
        """A seam's held dream: as shown when the dream acts on the image as shown (the seam's fade is
        made there), else scene-linear."""
        name = os.path.splitext(os.path.basename(self.raw_path(frame)))[0]
        return os.path.join(self.records.root, "held", name + (".png" if self.view is not None else ".exr"))

    def _reply(self, plan: FramePlan) -> tuple[str, str]:
        """Where a dream from the server goes (scene-linear EXR)."""
        role = self.sent[plan.frame][1] if plan.frame in self.sent else "write"
        if role == "held":
            return self.held_path(plan.frame), "png" if self.view is not None else "exr"
        if role == "still":
            return os.path.join(self.job_dir, "still.png" if self.as_shown else "still.exr"), \
                "png" if self.as_shown else "exr"
        return self.dream_path(plan.frame), "png" if self.as_shown else "exr"

    def _written_as(self, plan: FramePlan) -> dict:
        """The reply's dither: for the dreams written to the user's 8-bit
        files, not for a seam's held dream (it is faded into another first)."""
        role = self.sent[plan.frame][1] if plan.frame in self.sent else "write"
        return {"dither": self.dither} if self.dither and role in ("write", "blend", "still") else {}

    def target_path(self, scene, frame: int) -> str:
        return self.target_paths(scene, [frame])[0]

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
            path = bpy.path.abspath(scene.render.filepath)
            extension = scene.render.file_extension
            if scene.render.use_file_extension and not path.lower().endswith(extension.lower()):
                path += extension
            return [os.path.normpath(path)]
        finally:
            if not self.ended:  # after the render (seams) the user's settings stay
                rendering.raw_output(scene, self.job_pattern)

    # -- Overwrite off, Placeholders
    def skip_existing(self, scene, frames) -> None:
        """Overwrite off: Blender skips a frame whose file exists at the path it
        renders to, which is ours; so each frame whose *user* file exists gets
        an empty file at our path, and Blender skips it as it would."""
        if scene.render.use_overwrite:
            return
        frames = sorted(frames)
        for frame, target in zip(frames, self.target_paths(scene, frames)):
            ours = _numbered(self.job_pattern, frame)
            if os.path.exists(target) and not os.path.exists(ours):
                open(ours, "wb").close()
                print(f"Dream Renders: frame {frame} is left as it is: {target} exists and Overwrite is off",
                      flush=True)

    @writes_scene
    def frame_starts(self, scene) -> None:
        """Placeholders: the user's file of the frame about to render is
        made empty now, so other machines (Overwrite off) leave it alone."""
        frame = scene.frame_current
        if self.plan is None:
            self._begin(scene, frame)
        # the server loads the model and compiles for this size while Blender renders the first frame
        self.worker.prepare(scene.dream.to_params(), *scene_frames.output_size(scene))
        if scene.render.use_placeholder and frame in self.plan.frames and frame not in self.plan.held:
            target = self.target_path(scene, frame)
            if not os.path.exists(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "wb").close()
                self.placeholders.append(target)

    # -- Blender's render job
    def frame_written(self, scene) -> None:
        """Blender wrote the raw render of the current frame into this job's
        folder: keep it with its record and send it to dream (a pre-roll frame
        only to warm the chain, and not at all when the chunk carries on)."""
        frame = scene.frame_current
        numbered, literal = _numbered(self.job_pattern, frame), self.job_pattern
        if os.path.isfile(literal) and not os.path.isfile(numbered):
            return self._still(scene, frame, literal)
        if self.plan is None:
            self._begin(scene, frame)
        self.last = frame
        if not rendering.is_complete_render(numbered):
            raise UserError(f"Blender wrote no complete render of frame {frame} to {numbered}")
        if frame not in self.plan.order:
            os.remove(numbered)
            return  # a pre-roll frame of a chunk that carries on from the one before
        kept = self.raw_path(frame)
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        os.replace(numbered, kept)
        params = scene_frames.dream_params(scene)  # keyframed settings are evaluated at this frame
        self.chains[frame] = chain_settings(self.provenance(params))
        record = rendering.record_render(self.records, kept, frame, self.token, self.chains[frame], params)
        self.inputs[frame] = record.extra["digest"]
        role = "warm" if frame in self.plan.warm else "held" if frame in self.plan.held else "write"
        plan = FramePlan(frame, kept, self.target_path(scene, frame) if role == "write" else "", params)
        step = self.walk.visit(frame, self.chains[frame], self.inputs[frame], self._kept_link(plan, role),
                               wanted=role != "warm")  # a pre-roll frame is dreamed when the chunk needs it
        self.skip_existing(scene, [frame + scene.frame_step])  # Blender looks at the next frame now
        self.prerolled += role == "warm"
        if step.action == "keep":
            if role == "write":  # its dream is current: the user's file is written from it, if it is not
                self.sent[frame] = (plan, "kept")
                self.submitted += 1
                self.worker.messages.put(FrameDone(frame, plan.target, self.dream_path(frame), step.link))
            return
        self.records.add_link(self.walk.link(step.link))
        self.sent[frame] = (plan, role)
        if self.carries_on and not self.dreams:
            print(f"Dream Renders: frame {frame} carries on from the dream of frame {self.plan.before(frame)}",
                  flush=True)
        self._submit(step, Job(plan, step.link, keep_state=self._keeps_state(frame, step.link)))
        self.submitted += 1
        self.dreams += 1

    def _kept_link(self, plan: FramePlan, role: str) -> Optional[str]:
        """The link of the frame's dream on disk, when it is current and
        carries on the chain where the walk is (a retried farm task, a
        rerun): kept, not dreamed again."""
        if role == "warm":
            return None
        record = self.records.file(self.held_path(plan.frame) if role == "held" else self.dream_path(plan.frame))
        made = ("held",) if role == "held" else ("dream", "blend")
        if record is None or record.made not in made or record.settings != digest_of(self.provenance(plan.params)) \
                or not self.records.chain_is_current(record.link, self.is_current):
            return None
        before = record.extra.get("before")
        if before is not None and not self.records.chain_is_current(before, self.is_current):
            return None
        return record.link if self.walk.continues(record.link, before) else None

    def _submit(self, step, *jobs: Job) -> None:
        """Jobs for the worker, after the frames the step replays; the first
        starts a sequence on the server when the step restores a state."""
        for made in step.replay:  # a pre-roll frame's link, for a later chunk to check this chain
            self.records.add_link(made)
        jobs = [Job(self._replayed(made.frame), made.id, replay=True) for made in step.replay] + list(jobs)
        if step.restore is not None:
            jobs[0].starts, jobs[0].state = True, self.records.start_state(step.restore)
        self.pending += jobs

    def _send_pending(self) -> None:
        """The jobs waiting for the main thread: the images as shown are made
        here (Blender's images may not be touched from its render thread)."""
        scene = bpy.data.scenes.get(self.scene_name)
        while self.pending:
            job = self.pending.pop(0)
            if self.view is not None and job.plan.source:
                if self.shown is None:
                    self.shown = colour_management.ShownImages(scene, os.path.join(self.records.root, "shown_input"))
                job.display = self.shown.of(job.plan.source)
            self.worker.submit(job)

    def _keeps_state(self, frame: int, link_id: str) -> Optional[str]:
        keep = state_to_keep(frame, self.every, last=frame == self.plan.frames[-1])
        if keep:
            self.states_asked.add(link_id)
        return keep

    def _replayed(self, frame: int) -> FramePlan:
        """A frame dreamed again to bring a fresh sequence to the chain, with
        the settings its render's record keeps (no frame is evaluated during a render)."""
        record = self.records.file(self.raw_path(frame))
        return FramePlan(frame, self.raw_path(frame), "", record.extra.get("params") if record else None)

    def _still(self, scene, frame: int, raw: str) -> None:
        """``render(write_still=True)``: a frame of its own, dreamed alone and
        written where Blender writes the still."""
        plan = FramePlan(frame, raw, self.target_paths(scene, [frame], still=True)[0], scene_frames.dream_params(scene))
        self.sent[frame] = (plan, "still")
        self.pending.append(Job(plan, "", starts=True))
        self.submitted += 1

    def render_ended(self, scene, cancelled: bool = False) -> None:
        """Blender's render job is over: the user's settings come back; the
        chunk ends at the last frame rendered, with its chain's state kept
        for the chunk after."""
        self.ended = True
        if cancelled:
            self.cancel()
            self._remove_placeholders()
        elif self.plan is not None and self.last is not None:
            self._ends_at(self.last)
        self.user_output.apply(scene)

    def _ends_at(self, last: int) -> None:
        held = tuple(f for f in self.plan.held if f <= last)
        if len(held) != len(self.plan.held):  # fewer frames than the fade: all of them are held
            for frame in held:
                record = self.records.file(self.held_path(frame))
                if record is not None and self.sent.get(frame, (None, ""))[1] == "held":
                    record.extra["of"] = len(held)
                    self.records.write_file(self.held_path(frame), record)
        self.plan = replace(self.plan, frames=tuple(f for f in self.plan.frames if f <= last), held=held,
                            seam_after=next((f for f in self.plan.shot if f > last), None))
        if self.walk.at != START and self.walk.at not in self.states_asked and not self.records.has_state(self.walk.at):
            restore, replay = self.walk.recovery(self.walk.at)  # the chunk after carries on from this state
            jobs = [Job(self._replayed(made.frame), made.id, replay=True) for made in replay]
            jobs[-1].keep_state = "lasting"
            jobs[0].starts, jobs[0].state = True, self.records.start_state(restore)
            self.pending += jobs

    def _remove_placeholders(self) -> None:
        """As Blender does on a cancel: the empty files this job made for frames it did not finish."""
        for path in self.placeholders:
            try:
                if os.path.getsize(path) == 0:
                    os.remove(path)
            except OSError:
                pass

    def restore_user_output(self) -> None:
        """The user's output settings back on the scene (if it still exists)."""
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is not None:
            self.user_output.apply(scene)

    def cancel(self) -> None:
        self.cancelled = True
        self.worker.cancel()

    # -- seams: once the chunk's own frames are dreamed
    def send_seams(self) -> None:
        """The seams beside this chunk that both sides have reached: their
        frames, dreamed on from the chunk before's chain and cross-faded."""
        self.seams_sent = True
        scene = bpy.data.scenes.get(self.scene_name)
        if self.plan is None or self.cancelled:
            return
        for seam in (self.plan.seam_before, self.plan.seam_after):
            if scene is not None and seam is not None and scene.dream.seam_fade:
                self._send_seam(scene, seam, scene.dream.seam_fade)

    def _send_seam(self, scene, seam: int, fade: int) -> None:
        """The chunk before's chain (ending at the frame before ``seam``)
        dreamed on over the held frames, each reply cross-faded into the held dream."""
        merge = seam_to_merge(self.records, self.plan.shot, seam, fade, self.current_dream(self.plan.before(seam)),
                              held_path=self.held_path, written_path=self.dream_path,
                              settings_of=lambda frame: digest_of(self.provenance(self._replayed(frame).params)),
                              is_current=self.is_current)
        if merge is None:
            return
        jobs = []
        for made, step, share in zip(merge.held, merge.steps, merge.shares):
            self.records.add_link(merge.walk.link(step.link))
            plan = replace(self._replayed(made.frame), target=self.target_path(scene, made.frame))
            self.sent[made.frame] = (plan, "blend", made.id, step.link)
            jobs.append(Job(plan, step.link, blend=(self.held_path(made.frame), share)))
        self._submit(merge.steps[0], *jobs)
        self.submitted += len(jobs)

    # -- main thread: write what the server dreamed
    @property
    def written(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> bool:
        if self.error is not None or self.cancelled:
            return True
        return self.ended and self.seams_sent and self.written == self.submitted

    def pump(self, wait: float = 0.0) -> None:
        """Writes the dreams that came back; waits up to ``wait`` s for one.
        Once the chunk's own frames are all in, its seams are sent."""
        while not self.finished:
            try:
                self._send_pending()
            except UserError as err:
                self.fail(str(err))
                return
            if self.ended and not self.seams_sent and self.written == self.submitted:
                self.send_seams()
                continue
            try:
                message = self.worker.messages.get(timeout=wait) if wait else self.worker.messages.get_nowait()
            except queue.Empty:
                return
            self._handle(message)

    def _handle(self, message) -> None:
        if isinstance(message, FrameDone):
            self._write(message)
        elif isinstance(message, FrameFailed):
            self.fail(message.describe())
        elif isinstance(message, RunCancelled):
            self.cancelled = True

    def _write(self, message: FrameDone) -> None:
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            self.fail(f"the scene {self.scene_name!r} is gone (renamed or deleted) while dreaming")
            return
        plan, role, *blend = self.sent[message.frame]
        settings = digest_of(self.provenance(plan.params))
        if role == "kept":
            self.counts["kept"] += 1
            if self._display_is_current(message.target, message.link):
                return
        if role == "held":
            self.records.write_file(message.written, FileRecord("held", settings, message.link, plan.frame,
                                                                extra={"of": len(self.plan.held)}))
            self.counts["held"] += 1
            print(f"Dream Renders: frame {message.frame} dreamed, held for the seam with the chunk before", flush=True)
            return
        if role == "write":
            self.records.write_file(message.written, FileRecord("dream", settings, message.link, plan.frame,
                                                                [file_stat(plan.source), self.inputs[plan.frame]]))
        elif role == "blend":
            own, before = blend
            self.records.write_file(message.written, FileRecord("blend", settings, own, plan.frame,
                                                                extra={"before": before}))
            self.merged.append(plan.frame)
        if self.writer is None:
            self.writer = colour_management.DisplayWriter(scene, self.user_output, shown=self.as_shown)
        try:
            self.writer.write(message.written, message.target)
        except UserError as err:
            self.fail(f"frame {message.frame}: {err}")
            return
        if role != "still":
            self.records.write_file(message.target, FileRecord("display", self.writer.digest,
                                                               blend[0] if blend else message.link, plan.frame))
        if role == "kept":
            self.rewritten += 1
        else:
            self.counts[role] += 1
        print(f"Dream Renders: {'wrote' if role == 'kept' else 'dreamed'} frame {message.frame} -> {message.target}",
              flush=True)

    def _display_is_current(self, target: str, link_id: str) -> bool:
        record = self.records.file(target)
        if record is None or record.link != link_id:
            return False
        if self.writer is None:
            self.writer = colour_management.DisplayWriter(bpy.data.scenes[self.scene_name], self.user_output,
                                                          shown=self.as_shown)
        return record.settings == self.writer.digest

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self.worker.cancel()

    def close(self, in_handler: bool) -> None:
        """Removes the job's folder; the helper scene only outside render
        handlers (Blender 3.4 crashes when a scene is removed there)."""
        for writer in (self.writer, self.shown):
            if writer is not None:
                writer.release() if in_handler else writer.close()
        self.writer = self.shown = None
        shutil.rmtree(self.job_dir, ignore_errors=True)
        self.worker.finish()

    @property
    def waiting(self) -> list[int]:
        """This chunk's held frames not yet written as the seam's blend."""
        waiting = []
        for frame in self.plan.held if self.plan is not None else ():
            held, written = self.records.file(self.held_path(frame)), self.records.file(self.dream_path(frame))
            if held is not None and (written is None or written.made != "blend" or written.link != held.link):
                waiting.append(frame)
        return waiting

    def summary(self) -> str:
        if self.error:
            return f"Dream on Render failed: {self.error}"
        if self.cancelled:
            return f"Dream on Render cancelled after {self.counts['write'] + self.counts['still']} frame(s)"
        parts = [f"Dream on Render: {self.counts['write'] + self.counts['still']} frame(s) dreamed"]
        if self.counts["kept"]:
            parts.append(f", {self.counts['kept']} already current")
        if self.rewritten:
            parts.append(f" ({self.rewritten} written again for other colour or file settings)")
        if self.prerolled:
            parts.append(f" after {self.prerolled} pre-roll frame(s)")
        if self.merged:
            parts.append(f"; cross-faded frame(s) {', '.join(map(str, sorted(self.merged)))} at chunk seams")
        waiting = self.waiting
        if waiting:
            parts.append(f"; frames {waiting[0]}-{waiting[-1]} are dreamed and held for the seam with the frames "
                         f"before {waiting[0]} (this shot's Seam Fade): they are written cross-faded when those are "
                         "dreamed too, by whichever of the two renders ends second")
        return "".join(parts)


WRITE_FROM = "--dream-write-from"


def _script_argument(name: str) -> Optional[int]:
    """The number after ``name`` among the arguments after ``--``, or None."""
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if "--dream-fade" in args:
        raise UserError("--dream-fade is now the scene's Seam Fade (Dream Renders panel, saved in the .blend): "
                         "every chunk of the shot uses it without arguments")
    if name not in args:
        return None
    try:
        return int(args[args.index(name) + 1])
    except (IndexError, ValueError):
        raise UserError(f"{name} needs a number") from None


def write_from_argument() -> Optional[int]:
    """``blender -b shot.blend -s 90 -e 200 -a -- --dream-write-from 100``: a
    farm chunk of frames 100-200 with frames 90-99 as its pre-roll."""
    return _script_argument(WRITE_FROM)


def _numbered(pattern: str, frame: int) -> str:
    folder, name = os.path.split(pattern)
    return os.path.join(folder, name.replace("#####", f"{frame:05d}"))
