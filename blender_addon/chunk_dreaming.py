"""One Dream on Render job's decisions, with no bpy: a
:class:`ChunkDreaming` keeps each frame Blender renders with its record and
walks it as the shot planner says (:mod:`.shot.planner`): kept when its dream
is current and carries the chain on, else dreamed. The chunk is known at
its first frame (:mod:`.render_chunk`); it carries on exactly from a current
frame before it, or starts its own chain and holds its first *Seam Fade*
frames until the chunk before is there. The worker's messages are handled
as they come back, and the job's end is summed up.

Blender renders into a folder of the job's own, so whatever it writes there
this job rendered: an animation frame under its number, a still under the
pattern's literal name. Its Blender shell, :class:`~.render_job.RenderDreaming`,
gives it what only Blender knows (the scene's settings at a frame, where
the user's files go, the colour writers) through the methods marked so, and
passes the ``scene`` along untouched."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from typing import Optional

from .dispatch import Dispatcher
from .dream_provenance import dreamed_as, link_is_current
from .dreaming import FrameDone, FrameFailed, Job, RunCancelled
from .frame_paths import PADDING, frame_file, numbered
from .render_chunk import frame_role, plan_with_carry
from .render_records import current_render, is_complete_render, record_render
from .reports import render_summary
from .shot.atomic import owned_prefix, sweep_once
from .shot.frame_plans import FramePlan
from .shot.planner import ChunkPlan, Walk, checkpoint_every, seam_to_merge, state_to_keep
from .shot.provenance import FOLDER, START, FileRecord, Records, chain_settings, digest_of, file_stat
from .user_errors import UserError


class ChunkDreaming:
    """One render job's dreaming: the chunk's plan and chain, the worker, and
    the frames submitted and written. ``root``: the Dream output folder;
    ``token``: the scene's state now (see :mod:`.scene_state`); ``view``: the
    view the dream acts on (None: the render's light); ``exr_output``: the
    user's files are OpenEXR (a dream of the image as shown is carried back
    to light); ``dither``: for the user's 8-bit files."""

    def __init__(self, scene_name: str, root: str, token: dict, worker_for, *, view: Optional[str],
                 exr_output: bool, dither: Optional[dict], write_from: Optional[int], job_start: int,
                 pixels: int) -> None:
        self.scene_name = scene_name
        self.records = Records(os.path.join(root, FOLDER))
        self.token = token
        self.raw_pattern = frame_file(root, scene_name, "renders", PADDING)  # kept, as Dream Animation's
        # the dream acts on the render as shown (as a 16-bit PNG back, written as it is; EXR output: carried back
        # to scene light), or on its light (scene-linear EXR back, written through the view transform)
        self.view = view
        self.as_shown = view is not None and not exr_output
        self.dream_pattern = frame_file(root, scene_name, "shown" if self.as_shown else "linear", PADDING)
        self.dither = dither if self.as_shown else None
        self.shown = None  # the images as shown (the shell's, made on the main thread at the first frame)
        self.writer = None  # the user's files' writer (the shell's, made at the first write)
        self.pending: list[Job] = []  # jobs for the worker, sent from the main thread (shown images made there)
        os.makedirs(root, exist_ok=True)
        sweep_once(root)  # a killed job's folder goes
        self.job_dir = tempfile.mkdtemp(prefix=owned_prefix() + "render_", dir=root)  # what this job rendered
        self.job_pattern = os.path.join(self.job_dir, os.path.basename(self.raw_pattern))
        self.write_from = write_from
        self.job_start = job_start  # -s A: a farm's chunk starts here
        self.plan: Optional[ChunkPlan] = None  # known at the first frame Blender renders (-a, -f N, -s A -e B)
        self.walk = Walk()
        self.carries_on = False
        self.last: Optional[int] = None  # the last frame Blender rendered
        self.inputs: dict[int, str] = {}  # this job's renders' digests, by frame
        self.chains: dict[int, str] = {}  # and the settings the chain carries there
        self.worker = worker_for(self._reply, self.records, self._written_as)
        self.dispatcher = Dispatcher(self.worker.messages, {FrameDone: self._write, FrameFailed: self._frame_failed,
                                                            RunCancelled: self._run_cancelled})
        self.every = checkpoint_every(pixels)
        self.sent: dict[int, tuple] = {}  # frame -> (plan, role: write, held, blend or still, and a blend's links)
        self.submitted = self.prerolled = self.dreams = 0  # frames whose dream is awaited, warmed, sent
        self.counts = {"write": 0, "held": 0, "blend": 0, "still": 0, "kept": 0}  # frames written, by role
        self.written_frames: set[int] = set()  # frames whose dream (or held dream) is on disk
        self.rewritten = 0  # of the kept frames, those whose file was written (missing, or of other settings)
        self.merged: list[int] = []
        self.states_asked: set[str] = set()  # links whose state this job's dreams keep
        self.placeholders: list[str] = []  # user files this job touched as Blender's placeholders
        self.error: Optional[str] = None
        self.ended = False  # Blender's render job is over; frames may still be dreaming
        self.cancelled = False
        self.seams_sent = False

    # -- what the shell gives (``scene`` is passed along untouched)
    def _begin(self, scene, frame: int) -> None:
        """The first frame Blender renders: the job's plan (see :meth:`begin`)."""
        raise NotImplementedError

    def _dream_params(self, scene) -> dict:
        """The dream settings at the frame Blender renders now."""
        raise NotImplementedError

    def target_paths(self, scene, frames, still: bool = False) -> list[str]:
        """Where Blender itself would write ``frames`` (a still: where it writes stills)."""
        raise NotImplementedError

    def _before_next(self, scene, frame: int) -> None:
        """Blender looks at the frame after ``frame`` now (Overwrite off)."""
        raise NotImplementedError

    def _shown_of(self, source: str) -> str:
        """The render ``source`` as the view transform shows it, made now (main thread)."""
        raise NotImplementedError

    def _has_scene(self) -> bool:
        raise NotImplementedError

    def _display_writer(self):
        """The writer of the user's files (made at first use, main thread)."""
        raise NotImplementedError

    def send_seams(self) -> None:
        """The seams beside this chunk that both sides have reached (see :meth:`_send_seams`)."""
        raise NotImplementedError

    # -- the chunk
    def begin(self, plan: ChunkPlan) -> None:
        """The job's plan at its first frame: it carries on exactly from the
        frame before it when that is current, else starts a chain there."""
        self.plan = plan
        start = self._carried_from()
        if start is not None:
            self.plan = plan_with_carry(plan)
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
        render = current_render(self.records, self.raw_path(frame), self.token)
        if record is None or record.link is None or render is None \
                or record.settings != digest_of(self.provenance(render.extra.get("params"))):
            return None
        return record.link if self.records.chain_is_current(record.link, self.is_current) else None

    def is_current(self, made) -> bool:
        """A link's render and settings are the scene's now (its render's record says)."""
        if made.frame in self.inputs:
            return link_is_current(made, (self.inputs[made.frame], self.chains[made.frame]), None)
        return link_is_current(made, None, current_render(self.records, self.raw_path(made.frame), self.token))

    # -- paths
    def raw_path(self, frame: int) -> str:
        return numbered(self.raw_pattern, frame)

    def dream_path(self, frame: int) -> str:
        """Where the frame's dream is kept (the chain's record is on it)."""
        return numbered(self.dream_pattern, frame)

    def provenance(self, params: Optional[dict]) -> dict:
        """What a dream depends on besides its render (see dream_provenance.dreamed_as)."""
        return dreamed_as(params or {}, self.view, self.dither)

    def held_path(self, frame: int) -> str:
        """A seam's held dream: as shown when the dream acts on the image as shown (the seam's fade is
        made there), else scene-linear."""
        name = os.path.splitext(os.path.basename(self.raw_path(frame)))[0]
        return os.path.join(self.records.root, "held", name + (".png" if self.view is not None else ".exr"))

    def _role(self, frame: int) -> str:
        return self.sent[frame][1] if frame in self.sent else "write"

    def _reply(self, plan: FramePlan) -> tuple[str, str]:
        """Where a dream from the server goes, in which format (the worker asks)."""
        role = self._role(plan.frame)
        if role == "held":
            return self.held_path(plan.frame), "png" if self.view is not None else "exr"
        if role == "still":
            return os.path.join(self.job_dir, "still.png" if self.as_shown else "still.exr"), \
                "png" if self.as_shown else "exr"
        return self.dream_path(plan.frame), "png" if self.as_shown else "exr"

    def _written_as(self, plan: FramePlan) -> dict:
        """The reply's dither: for the dreams written to the user's 8-bit
        files, not for a seam's held dream (it is faded into another first)."""
        return {"dither": self.dither} if self.dither and self._role(plan.frame) in ("write", "blend", "still") \
            else {}

    def target_path(self, scene, frame: int) -> str:
        return self.target_paths(scene, [frame])[0]

    # -- Overwrite off, Placeholders
    def leave_alone(self, frames, targets) -> None:
        """Overwrite off: Blender skips a frame whose file exists at the path it
        renders to, which is ours; so each frame whose *user* file (``targets``)
        exists gets an empty file at our path, and Blender skips it as it would."""
        for frame, target in zip(frames, targets):
            ours = numbered(self.job_pattern, frame)
            if os.path.exists(target) and not os.path.exists(ours):
                open(ours, "wb").close()
                print(f"Dream Renders: frame {frame} is left as it is: {target} exists and Overwrite is off",
                      flush=True)

    def needs_placeholder(self, frame: int) -> bool:
        """Placeholders: the frames this chunk writes itself (a held one is written by a seam)."""
        return frame in self.plan.frames and frame not in self.plan.held

    def place_holder(self, target: str) -> None:
        """The user's file made empty now, so other machines (Overwrite off) leave it alone."""
        if not os.path.exists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "wb").close()
            self.placeholders.append(target)

    # -- Blender's render job
    def rendered(self, scene, frame: int) -> None:
        """Blender wrote the raw render of ``frame`` into this job's folder:
        keep it with its record and send it to dream (a pre-roll frame only
        to warm the chain, and not at all when the chunk carries on)."""
        raw, literal = numbered(self.job_pattern, frame), self.job_pattern
        if os.path.isfile(literal) and not os.path.isfile(raw):
            return self._still(scene, frame, literal)
        if self.plan is None:
            self._begin(scene, frame)
        self.last = frame
        if not is_complete_render(raw):
            raise UserError(f"Blender wrote no complete render of frame {frame} to {raw}")
        if frame not in self.plan.order:
            os.remove(raw)
            return  # a pre-roll frame of a chunk that carries on from the one before
        kept = self.raw_path(frame)
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        os.replace(raw, kept)
        params = self._dream_params(scene)  # keyframed settings are evaluated at this frame
        self.chains[frame] = chain_settings(self.provenance(params))
        record = record_render(self.records, kept, frame, self.token, self.chains[frame], params)
        self.inputs[frame] = record.extra["digest"]
        role = frame_role(self.plan, frame)
        plan = FramePlan(frame, kept, self.target_path(scene, frame) if role == "write" else "", params)
        step = self.walk.visit(frame, self.chains[frame], self.inputs[frame], self._kept_link(plan, role),
                               wanted=role != "warm")  # a pre-roll frame is dreamed when the chunk needs it
        self._before_next(scene, frame)
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
        while self.pending:
            job = self.pending.pop(0)
            if self.view is not None and job.plan.source:
                job.display = self._shown_of(job.plan.source)
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
        plan = FramePlan(frame, raw, self.target_paths(scene, [frame], still=True)[0], self._dream_params(scene))
        self.sent[frame] = (plan, "still")
        self.pending.append(Job(plan, "", starts=True))
        self.submitted += 1

    def job_ended(self, cancelled: bool = False) -> None:
        """Blender's render job is over: the chunk ends at the last frame
        rendered, with its chain's state kept for the chunk after."""
        self.ended = True
        if cancelled:
            self.cancel()
            self._remove_placeholders()
        elif self.plan is not None and self.last is not None:
            self._ends_at(self.last)

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

    def cancel(self) -> None:
        self.cancelled = True
        self.worker.cancel()

    # -- seams: once the chunk's own frames are dreamed
    def _send_seams(self, scene, fade: int) -> None:
        """The seams beside this chunk that both sides have reached (``fade``:
        the shot's Seam Fade; 0: none): their frames, dreamed on from the
        chunk before's chain and cross-faded."""
        self.seams_sent = True
        if self.plan is None or self.cancelled:
            return
        for seam in (self.plan.seam_before, self.plan.seam_after):
            if seam is not None and fade:
                self._send_seam(scene, seam, fade)

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
        self.dispatcher.drain(wait, finished=lambda: self.finished, before_each=self._send_ready)

    def _send_ready(self) -> None:
        """Before each message: the jobs waiting for the main thread go to the
        worker; once the chunk's own frames are all in, its seams too."""
        if not self._sent_pending():
            return
        if self.ended and not self.seams_sent and self.written == self.submitted:
            self.send_seams()
            if not self.finished:
                self._sent_pending()

    def _sent_pending(self) -> bool:
        try:
            self._send_pending()
        except UserError as err:
            self.fail(str(err))
            return False
        return True

    # -- the worker's messages (see dispatch.Dispatcher)
    def _frame_failed(self, message: FrameFailed) -> None:
        self.fail(message.describe())

    def _run_cancelled(self, message: RunCancelled) -> None:
        self.cancelled = True

    def _write(self, message: FrameDone) -> None:
        """A dream came back (or a kept one is due): its records, and the
        user's file written from it as Blender writes renders."""
        if not self._has_scene():
            self.fail(f"the scene {self.scene_name!r} is gone (renamed or deleted) while dreaming")
            return
        plan, role, *blend = self.sent[message.frame]
        settings = digest_of(self.provenance(plan.params))
        if role == "kept":
            self.counts["kept"] += 1
            if self._display_is_current(message.target, message.link):
                self.written_frames.add(message.frame)
                return
        if role == "held":
            self.records.write_file(message.written, FileRecord("held", settings, message.link, plan.frame,
                                                                extra={"of": len(self.plan.held)}))
            self.counts["held"] += 1
            self.written_frames.add(message.frame)
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
        writer = self._display_writer()
        try:
            writer.write(message.written, message.target)
        except UserError as err:
            self.fail(f"frame {message.frame}: {err}")
            return
        if role != "still":
            self.records.write_file(message.target, FileRecord("display", writer.digest,
                                                               blend[0] if blend else message.link, plan.frame))
        if role == "kept":
            self.rewritten += 1
        else:
            self.counts[role] += 1
        self.written_frames.add(message.frame)
        print(f"Dream Renders: {'wrote' if role == 'kept' else 'dreamed'} frame {message.frame} -> {message.target}",
              flush=True)

    def _display_is_current(self, target: str, link_id: str) -> bool:
        record = self.records.file(target)
        if record is None or record.link != link_id:
            return False
        return record.settings == self._display_writer().digest

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

    # -- what it came to
    @property
    def waiting(self) -> list[int]:
        """This chunk's held frames not yet written as the seam's blend."""
        waiting = []
        for frame in self.plan.held if self.plan is not None else ():
            held, written = self.records.file(self.held_path(frame)), self.records.file(self.dream_path(frame))
            if held is not None and (written is None or written.made != "blend" or written.link != held.link):
                waiting.append(frame)
        return waiting

    def outlives_its_render(self, next_frames: set[int]) -> bool:
        """Whether this job's dreams are still to be written after a next
        render job starts (a window's render ends before its last dreams are back):
        its render is over, dreams are still coming, and the next job renders
        none of its frames again (those it dreams again itself)."""
        return self.ended and not self.finished and not set(self.sent) & next_frames

    @property
    def to_write(self) -> int:
        """How many frames the job writes: its chunk's, once its first frame has begun, else those sent."""
        return len(self.plan.frames) if self.plan is not None else len(self.sent)

    @property
    def unwritten(self) -> list[int]:
        """Frames sent to dream whose dream is not on disk yet."""
        return sorted(set(self.sent) - self.written_frames)

    @property
    def has_news(self) -> bool:
        """Whether the job's end is worth a word: it dreamed, failed, or holds frames for a seam."""
        return bool(self.dreams or self.submitted or self.error or self.waiting)

    @property
    def wrote_no_frame(self) -> bool:
        """Blender's render wrote no file (F12 with a window open): nothing was
        dreamed, cancelled or failed; its result is dreamed as Dream Frame would."""
        return not self.dreams and not self.submitted and not self.cancelled and self.error is None

    def summary(self) -> str:
        return render_summary(dreamed=self.counts["write"] + self.counts["still"], kept=self.counts["kept"],
                              rewritten=self.rewritten, prerolled=self.prerolled, merged=self.merged,
                              waiting=self.waiting, cancelled=self.cancelled, error=self.error)

