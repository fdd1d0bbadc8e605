"""The frame scheduler: a :class:`FrameRun` brings every planned frame to a
dreamed file on disk that is the dream of the scene as it is now,
rendering frames on the main thread while a worker thread dreams. It walks
the shot as the shot planner says (:class:`~.wire.shots.Walk`): a frame
whose dream on disk is the one the chain makes now is kept, the others are
dreamed, the chain brought to where it is from its latest kept state.
Operators drive it with :meth:`tick`, modally (a timer) or blocking
(scripts, ``blender --background``)."""
from __future__ import annotations

import os
import queue
import time
from dataclasses import replace
from typing import Optional

import bpy

from . import colour_management, rendering, scene_frames, scene_state
from .dreaming import (
    DreamWorker,
    FrameDone,
    FrameFailed,
    FrameProgress,
    Job,
    Message,
    RunCancelled,
    reply_as_linear,
    reply_as_shown,
    reply_as_target,
)
from .errors import UserError
from .wire.plans import FramePlan
from .wire.provenance import START, Digests, FileRecord, Link, chain_settings, digest_of, file_stat
from .wire.shots import Walk, checkpoint_every, state_to_keep


class FrameRun:
    """``redream``: every frame is dreamed again; ``rerender``: every frame
    rendered again. The scene is looked up by name on every tick: a
    reference held across ticks can be invalidated by undo."""

    def __init__(self, scene, frame_plans: list[FramePlan], job: str, link, render_missing: bool = True,
                 redream: bool = False, colour_managed: bool = False, rerender: bool = False) -> None:
        """``render_missing``: the sources are our renders (made when they are
        not the scene's now); else files given (a strip). ``colour_managed``:
        the sources are scene-linear renders; their dreams are written
        through the scene's colour management, as Blender writes renders
        (the server replies in EXR, Blender makes the PNG)."""
        self.scene_name = scene.name
        self.plans = [replace(p, params=scene_frames.frame_params(scene, p.frame, objects=render_missing))
                      for p in frame_plans]
        self.by_frame = {p.frame: p for p in self.plans}
        self.records = scene_frames.records(scene)
        self.digests = Digests()
        self.token = scene_state.token(scene) if render_missing else None
        self.render_missing, self.redream, self.rerender = render_missing, redream, rerender
        self.render_in_job = False  # a window's run: frames render in Blender's render job (set by the operator)
        self.job: Optional[rendering.FrameRenderJob] = None  # the frame Blender renders for the run now
        self.shown = colour_management.ShownImages(scene, os.path.join(self.records.root, "shown_input")) \
            if colour_managed and scene.dream.colour_space == "SHOWN" else None  # the dream acts on what is seen
        self.display = colour_management.DisplayWriter(scene, shown=self.shown is not None) if colour_managed else None
        self.reply = reply_as_shown if self.shown else reply_as_linear if colour_managed else reply_as_target
        # the dreams are written to 8-bit PNGs: a dream of the image as shown is rounded with Blender's dither
        self.dither = colour_management.dither_of(scene, eight_bit=True) if self.shown else None
        self.worker = DreamWorker(link, job, self.reply, self.records,
                                  lambda plan: {"dither": self.dither} if self.dither else {})
        self.walk = Walk(START, self.records.link, self.records.has_state)
        self.inputs: dict[int, str] = {}  # the renders' digests as they are now, by frame
        self.said: set[str] = set()  # why renders were made again, said once a run
        self.every = checkpoint_every(scene_frames.output_size(scene)[0] * scene_frames.output_size(scene)[1])
        self.visited = 0  # frames the walk has been through
        self.in_flight = 0  # frames sent and not yet written
        self.dreams = 0  # frames sent to dream
        self.kept = 0  # frames whose dream on disk is current
        self.rewritten = 0  # of those, frames whose file was written again (other colour or file settings)
        self.done = 0  # frames current on disk now (kept or dreamed)
        self.error: Optional[str] = None
        self.cancelled = False
        self.current_fraction = 0.0

    @property
    def scene(self):
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise UserError(f"the scene {self.scene_name!r} is gone (renamed or deleted) while dreaming")
        return scene

    @property
    def total(self) -> int:
        return len(self.plans)

    @property
    def skipped(self) -> int:
        return self.kept

    @property
    def fraction(self) -> float:
        return (self.done + self.current_fraction) / max(1, self.total)

    @property
    def finished(self) -> bool:
        return self.error is not None or self.cancelled or self.done == self.total

    def status(self) -> str:
        if self.job is not None:
            return f"Rendering frame {self.job.frame} ({self.fraction:.0%})"
        return f"Dreaming frame {min(self.done + 1, self.total)}/{self.total} ({self.fraction:.0%})"

    # -- what is on disk
    def provenance(self, params: dict) -> dict:
        """What a dream depends on besides its render (see colour_management.dreamed_as)."""
        return colour_management.dreamed_as(params, self.shown.digest if self.shown else None, self.dither)

    def chain_of(self, frame: int) -> str:
        return chain_settings(self.provenance(self.by_frame[frame].params))

    def settings_of(self, frame: int) -> str:
        return digest_of(self.provenance(self.by_frame[frame].params))

    def is_current(self, made: Link) -> bool:
        """Whether a link's render and settings are the scene's now: frames of
        this run as visited; earlier ones by their render's record."""
        if made.frame in self.inputs:
            return made.input == self.inputs[made.frame] and made.chain == self.chain_of(made.frame)
        if not self.render_missing:
            return False
        record = rendering.current_render(self.records, scene_frames.frame_file(self.scene, "renders", made.frame),
                                          self.token)
        return record is not None and made.input == record.extra.get("digest") \
            and made.chain == record.extra.get("chain")

    def _kept_link(self, plan: FramePlan) -> Optional[str]:
        """The link of the frame's dream on disk when it is current and
        carries on the chain where the walk is."""
        if self.redream:
            return None
        record = self.records.file(self.reply(plan)[0])
        if record is None or record.link is None or record.settings != self.settings_of(plan.frame):
            return None
        current = self.records.chain_is_current(record.link, self.is_current)
        return record.link if current and self.walk.continues(record.link) else None

    def _input(self, plan: FramePlan) -> tuple[Optional[str], bool]:
        """The digest of the frame's render as the scene renders it now
        (rendered when needed; None while Blender's render job renders it);
        True when it was rendered."""
        scene = self.scene
        if not self.render_missing:
            digest = self.digests.of(plan.source)
            if digest is None:
                raise UserError(f"source frame missing: {plan.source}")
            return digest, False
        if self.job is not None:
            if not self.job.done():
                return None, False
            job, self.job = self.job, None
            job.finish()
            return self._recorded(plan), True
        record = None if self.rerender else rendering.current_render(self.records, plan.source, self.token)
        problem = rendering.render_problem(scene, plan.source) if os.path.exists(plan.source) else None
        if record is not None and problem is None:
            return record.extra["digest"], False
        why = problem or rendering.why_not_current(self.records, plan.source, self.token) if not self.rerender else None
        if why is not None and why not in self.said:
            self.said.add(why)
            print(f"Dream Renders: the render of frame {plan.frame} is {why}; rendering it again"
                  + ("" if problem else " (and any other frame like it)"), flush=True)
        self.worker.prepare(plan.params, *scene_frames.output_size(scene))  # while the first frame renders
        if self.render_in_job:
            self.job = rendering.FrameRenderJob(scene, plan.frame, plan.source)
            return None, False
        rendering.render_to_file(scene, plan.frame, plan.source)
        return self._recorded(plan), True

    def _recorded(self, plan: FramePlan) -> str:
        record = rendering.record_render(self.records, plan.source, plan.frame, self.token,
                                         self.chain_of(plan.frame), plan.params)
        return record.extra["digest"]

    # -- the walk
    def _feed(self) -> bool:
        """Walks on to the next frames while the worker has room: kept frames
        go by at once, one frame is rendered per call (the window stays
        live), and frames to dream are sent with what their sequence needs.
        True when it rendered or started a render."""
        while self.visited < self.total and self.in_flight <= DreamWorker.IN_FLIGHT:
            plan = self.plans[self.visited]
            rendering_before = self.job is not None
            digest, rendered = self._input(plan)
            if digest is None:  # Blender renders it: looked at again on the next tick
                return not rendering_before  # True when this call started the render
            self.inputs[plan.frame] = digest
            step = self.walk.visit(plan.frame, self.chain_of(plan.frame), digest, self._kept_link(plan))
            self.visited += 1
            if step.action == "keep":
                self.kept += 1
                self._kept_frame(plan, step.link)
            else:
                self._send(plan, step)
            if rendered:
                return True
        return False

    def _send(self, plan: FramePlan, step) -> None:
        for made in step.replay + [self.walk.link(step.link)]:
            self.records.add_link(made)
        replay = [Job(self.by_frame[made.frame] if made.frame in self.by_frame else self._outside(made.frame),
                      made.id, replay=True) for made in step.replay]
        keep = state_to_keep(plan.frame, self.every, last=self.visited == self.total)
        jobs = replay + [Job(plan, step.link, keep_state=keep)]
        if self.shown is not None:
            jobs = [replace(job, display=self.shown.of(job.plan.source)) for job in jobs]
        if step.restore is not None:
            jobs[0] = replace(jobs[0], starts=True, state=self.records.start_state(step.restore))
        for job in jobs:
            self.worker.submit(job)
        self.in_flight += 1
        self.dreams += 1

    def _outside(self, frame: int) -> FramePlan:
        """A frame before this run's first, dreamed again to carry its chain on
        (with the settings its render's record keeps)."""
        source = scene_frames.frame_file(self.scene, "renders", frame)
        record = self.records.file(source)
        return FramePlan(frame, source, "", record.extra.get("params") if record else None)

    def _kept_frame(self, plan: FramePlan, link_id: str) -> None:
        """A frame whose dream is current: its display file too, or written again from it."""
        self.done += 1
        if self.display is None:
            return
        record = self.records.file(plan.target)
        if record is None or record.link != link_id or record.settings != self.display.digest:
            self.rewritten += self._display(plan.frame, self.reply(plan)[0], plan.target, link_id)

    def tick(self, wait: float = 0.0) -> None:
        """Walks on and handles the worker's messages; waits up to ``wait`` s for one."""
        if self.finished:
            return  # cancelled or failed: render and send nothing more
        try:
            busy = self._feed()
        except rendering.RenderStopped:
            self.cancel()  # Esc in Blender's render window stops the run as Esc does here
            return
        except (UserError, ValueError) as err:  # ours, and a kept state gone since (wire.provenance)
            self.fail(str(err))
            return
        if busy and self.render_in_job:
            return  # a window's tick does one thing: the dreams that came back are written on the next
        deadline = time.monotonic() + wait
        while not self.finished:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                message = self.worker.messages.get(timeout=timeout) if timeout else self.worker.messages.get_nowait()
            except queue.Empty:
                return
            self._handle(message)
            if isinstance(message, FrameDone):
                return  # let the caller feed the next frame

    def _handle(self, message: Message) -> None:
        if isinstance(message, FrameProgress):
            self.current_fraction = message.fraction
        elif isinstance(message, FrameDone):
            self._dreamed(message)
        elif isinstance(message, RunCancelled):
            self.cancelled = True
        elif isinstance(message, FrameFailed):
            self.fail(message.describe())
        if self.finished:
            self.worker.finish()

    def _dreamed(self, message: FrameDone) -> None:
        """A dream came back (the worker wrote it): its records, and its display file."""
        plan = self.by_frame[message.frame]
        self.records.write_file(message.written, FileRecord(
            "dream", self.settings_of(plan.frame), message.link, plan.frame,
            [file_stat(plan.source), self.inputs[plan.frame]]))
        if self.display is not None and not self._display(plan.frame, message.written, plan.target, message.link):
            return
        self.in_flight -= 1
        self.done += 1
        self.current_fraction = 0.0

    def _display(self, frame: int, linear: str, target: str, link_id: str) -> bool:
        """Writes a colour-managed frame from the linear dream; False if that failed."""
        try:
            self.display.write(linear, target)
        except UserError as err:
            self.fail(f"frame {frame}: {err}")
            return False
        self.records.write_file(target, FileRecord("display", self.display.digest, link_id, frame))
        return True

    def close(self) -> None:
        """Removes what the run made for itself (the colour helper scene); a
        frame Blender still renders for it ends on its own, and is dropped."""
        if self.job is not None:
            self.job.abandon()
            self.job = None
        for writer in (self.display, self.shown):
            if writer is not None:
                writer.close()
        self.display = self.shown = None

    def fail(self, message: str) -> None:
        self.error = message
        self.worker.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        self.worker.cancel()

    def targets(self) -> list[str]:
        """The dreamed frames on disk that this run made or found current."""
        return [p.target for p in self.plans if self.records.file(p.target) is not None] \
            if self.done == self.total else []
