"""Dream Animation's decisions, with no bpy: a :class:`FrameWalk` walks
the planned frames as the shot planner says (:class:`~.shot.planner.Walk`):
a frame whose dream on disk is the one the chain makes now is kept, the
others are sent to dream, the chain brought to where it is from its latest
kept state; the worker's messages are handled as they come back.

Its Blender shell, :class:`~.runs.FrameRun`, gives it each frame's render
(:meth:`FrameWalk._input`: reused, or rendered on the main thread) and the
path of a frame's render (:meth:`FrameWalk._render_path`); the colour
writers it is handed (``display``, ``shown``) are Blender's, used through
their methods only."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from .dispatch import Dispatcher
from .dream_provenance import dreamed_as, link_is_current
from .dreaming import DreamWorker, FrameDone, FrameFailed, FrameProgress, Job, RunCancelled
from .frame_paths import reply_as_linear, reply_as_shown, reply_as_target
from .render_records import RenderVerdict, current_render, record_render
from .reports import run_status
from .shot.frame_plans import FramePlan
from .shot.planner import Walk, checkpoint_every, state_to_keep
from .shot.provenance import START, Digests, FileRecord, Link, Records, chain_settings, digest_of, file_stat
from .user_errors import RenderStopped, UserError


class FrameWalk:
    """``plans`` carry each frame's settings; ``worker_for(reply, records,
    written_as)`` makes the worker (a :class:`~.dreaming.DreamWorker`).
    ``render_missing``: the sources are our renders (made when they are not
    the scene's now); else files given (a strip). ``redream``: every frame
    is dreamed again; ``rerender``: every frame rendered again. ``display``:
    writes the scene-linear dreams through the scene's colour management (a
    ``colour_management.DisplayWriter``); ``shown``: the dream acts on the
    render as shown (``colour_management.ShownImages``), the dreams rounded
    with ``dither`` for 8-bit files."""

    def __init__(self, plans: list[FramePlan], records: Records, worker_for, *, token: Optional[dict],
                 pixels: int, render_missing: bool = True, redream: bool = False, rerender: bool = False,
                 display=None, shown=None, dither: Optional[dict] = None) -> None:
        self.plans = plans
        self.by_frame = {p.frame: p for p in self.plans}
        self.records = records
        self.digests = Digests()
        self.token = token
        self.render_missing, self.redream, self.rerender = render_missing, redream, rerender
        self.render_in_job = False  # a window's run: frames render in Blender's render job (set by the operator)
        self.job = None  # the frame Blender renders for the run now (done(), finish(), abandon(), frame)
        self.display, self.shown, self.dither = display, shown, dither
        self.reply = reply_as_shown if shown is not None else reply_as_linear if display is not None \
            else reply_as_target
        self.worker = worker_for(self.reply, self.records, lambda plan: {"dither": self.dither} if self.dither else {})
        self.dispatcher = Dispatcher(self.worker.messages, {FrameProgress: self._progress, FrameDone: self._dreamed,
                                                            RunCancelled: self._run_cancelled,
                                                            FrameFailed: self._frame_failed})
        self.walk = Walk(START, self.records.link, self.records.has_state)
        self.inputs: dict[int, str] = {}  # the renders' digests as they are now, by frame
        self.said: set[str] = set()  # why renders were made again, said once a run
        self.every = checkpoint_every(pixels)
        self.visited = 0  # frames the walk has been through
        self.awaited: list[int] = []  # the frames sent and not yet written, oldest first: they come back in order
        self.dreams = 0  # frames sent to dream
        self.kept = 0  # frames whose dream on disk is current
        self.rewritten = 0  # of those, frames whose file was written (missing, or of other settings)
        self.done = 0  # frames current on disk now (kept or dreamed)
        self.error: Optional[str] = None
        self.cancelled = False
        self.stopped: Optional[str] = None  # why Blender's render stopped the run, if it did
        self.current_fraction = 0.0

    # -- what the shell gives
    def _input(self, plan: FramePlan) -> tuple[Optional[str], bool]:
        """The digest of the frame's render as the scene renders it now
        (rendered when needed; None while Blender's render job renders it);
        True when it was rendered."""
        raise NotImplementedError

    def _render_path(self, frame: int) -> str:
        """Where the render of ``frame`` is (a frame of the shot outside this run too)."""
        raise NotImplementedError

    # -- progress
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
        upcoming = self.plans[self.visited].frame if self.visited < self.total else None
        return run_status(self.job.frame if self.job is not None else None,
                          self.awaited[0] if self.awaited else None, upcoming, self.done, self.total, self.fraction)

    # -- what is on disk
    def provenance(self, params: dict) -> dict:
        """What a dream depends on besides its render (see dream_provenance.dreamed_as)."""
        return dreamed_as(params, self.shown.digest if self.shown else None, self.dither)

    def chain_of(self, frame: int) -> str:
        return chain_settings(self.provenance(self.by_frame[frame].params))

    def settings_of(self, frame: int) -> str:
        return digest_of(self.provenance(self.by_frame[frame].params))

    def is_current(self, made: Link) -> bool:
        """Whether a link's render and settings are the scene's now: frames of
        this run as visited; earlier ones by their render's record."""
        if made.frame in self.inputs:
            return link_is_current(made, (self.inputs[made.frame], self.chain_of(made.frame)), None)
        if not self.render_missing:
            return False
        return link_is_current(made, None, current_render(self.records, self._render_path(made.frame), self.token))

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

    def _given_input(self, plan: FramePlan) -> str:
        """A given file's digest (a strip's frame): it is dreamed as it is."""
        digest = self.digests.of(plan.source)
        if digest is None:
            raise UserError(f"source frame missing: {plan.source}")
        return digest

    def _say_once(self, frame: int, verdict: RenderVerdict) -> None:
        """Why a render is made again, once a run for each reason."""
        if verdict.why is not None and verdict.why not in self.said:
            self.said.add(verdict.why)
            print(f"Dream Renders: {verdict.message(frame)}", flush=True)

    def _recorded(self, plan: FramePlan) -> str:
        record = record_render(self.records, plan.source, plan.frame, self.token, self.chain_of(plan.frame),
                               plan.params)
        return record.extra["digest"]

    # -- the walk
    def _feed(self) -> bool:
        """Walks on to the next frames while the worker has room: kept frames
        go by at once, one frame is rendered per call (the window stays
        live), and frames to dream are sent with what their sequence needs.
        True when it rendered or started a render."""
        while self.visited < self.total and len(self.awaited) <= DreamWorker.IN_FLIGHT:
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
        self.awaited.append(plan.frame)
        self.dreams += 1

    def _outside(self, frame: int) -> FramePlan:
        """A frame before this run's first, dreamed again to carry its chain on
        (with the settings its render's record keeps)."""
        source = self._render_path(frame)
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
        except RenderStopped as err:
            self.stopped = str(err)
            self.cancel()  # Esc in Blender's render window stops the run as Esc does here
            return
        except (UserError, ValueError) as err:  # ours, and a kept state gone since (shot.provenance)
            self.fail(str(err))
            return
        if busy and self.render_in_job:
            return  # a window's tick does one thing: the dreams that came back are written on the next
        self.dispatcher.drain(wait, finished=lambda: self.finished)

    # -- the worker's messages (see dispatch.Dispatcher)
    def _progress(self, message: FrameProgress) -> None:
        self.current_fraction = message.fraction

    def _dreamed(self, message: FrameDone) -> bool:
        """A dream came back (the worker wrote it): its records, and its
        display file; then the caller feeds the next frame."""
        plan = self.by_frame[message.frame]
        self.records.write_file(message.written, FileRecord(
            "dream", self.settings_of(plan.frame), message.link, plan.frame,
            [file_stat(plan.source), self.inputs[plan.frame]]))
        if self.display is None or self._display(plan.frame, message.written, plan.target, message.link):
            self.awaited.remove(message.frame)
            self.done += 1
            self.current_fraction = 0.0
        self._stop_if_finished()
        return True

    def _run_cancelled(self, message: RunCancelled) -> None:
        self.cancelled = True
        self._stop_if_finished()

    def _frame_failed(self, message: FrameFailed) -> None:
        self.fail(message.describe())
        self._stop_if_finished()

    def _stop_if_finished(self) -> None:
        if self.finished:
            self.worker.finish()

    def _display(self, frame: int, linear: str, target: str, link_id: str) -> bool:
        """Writes a colour-managed frame from the linear dream; False if that failed."""
        try:
            self.display.write(linear, target)
        except UserError as err:
            self.fail(f"frame {frame}: {err}")
            return False
        self.records.write_file(target, FileRecord("display", self.display.digest, link_id, frame))
        return True

    # -- the end
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
