"""Dreaming files on the server from a worker thread. No bpy here: the
thread reads a rendered frame, sends it, and writes the dreamed frame
atomically; the main thread drains its messages (Blender's data may only be
touched from the main thread). Messages are small classes, each handed to
its route's handler by type (:class:`~.dispatch.Dispatcher`)."""
from __future__ import annotations

import errno
import os
import queue
import threading
from dataclasses import dataclass, replace
from typing import Optional, Union

from .frame_paths import FORMATS, reply_as_target
from .server_link import ConnectionFailed, ServerLink
from .shot.atomic import write_atomically
from .shot.frame_plans import FramePlan
from .shot.provenance import Records
from .wire.client import Cancelled, DreamClient, FrameRequest
from .wire.protocol import ProtocolError, failure_text


@dataclass(frozen=True)
class FrameProgress:
    frame: Optional[int]
    fraction: float  # of this frame's steps


@dataclass(frozen=True)
class FrameDone:
    frame: int
    target: str
    written: str  # the file the dream was written to: ``target``, or a scene-linear EXR to convert into it
    link: str = ""  # the chain's link after the frame (see shot.provenance)
    state_kept: bool = False  # the carried state after it is kept on disk


@dataclass(frozen=True)
class FrameFailed:
    frame: Optional[int]
    message: str

    def describe(self) -> str:
        """The message as the user reads it, naming the frame when known."""
        return self.message if self.frame is None else f"frame {self.frame}: {self.message}"


@dataclass(frozen=True)
class RunCancelled:
    frame: Optional[int]


Message = Union[FrameProgress, FrameDone, FrameFailed, RunCancelled]


@dataclass
class Job:
    """One frame for the worker. ``starts``: the frame begins a new sequence
    on the server, from the carried state ``state`` (None: afresh); jobs
    after it carry it on. ``replay``: dreamed only to bring the sequence to
    where the chain is (see shot.planner), never written. ``keep_state``: the
    sequence's state after it is kept (under ``link`` in ``records``):
    ``lasting`` or ``passing`` (dropped once a newer one is kept), see
    shot.planner.state_to_keep.
    ``blend``: a seam's frame, the reply cross-faded into this file by this
    share (the sequence carries the dream itself on). ``display``: the
    render as the scene's view transform shows it (a 16-bit PNG): the dream
    acts on that, with the render's passes."""

    plan: FramePlan
    link: str = ""
    starts: bool = False
    state: Optional[bytes] = None
    replay: bool = False
    keep_state: Optional[str] = None
    blend: Optional[tuple[str, float]] = None
    display: Optional[str] = None  # the render as the view transform shows it: that is dreamed


@dataclass(frozen=True)
class Prepare:
    """Frames of this size and these settings are coming (see DreamWorker.prepare)."""

    params: dict
    width: int
    height: int


def frame_request(job: Job, reply_format: str, state: Optional[bytes] = None,
                  written_as: Optional[dict] = None) -> FrameRequest:
    """The rendered file as a request: its bytes as they are on disk, the
    frame's own settings, the format of the reply; ``state``: the carried
    state the server's new sequence starts from; ``written_as``: more of the
    reply's output fields (its ``dither``)."""
    data, meta = _file_payload(job.plan.source)
    extras = {}
    if state is not None:
        extras["previous_state"] = (state, {"format": "dream-state"})
    if job.blend is not None:
        extras["blend_with"] = _file_payload(job.blend[0])
    if job.display is not None:
        extras["display"] = _file_payload(job.display)
    output = {"format": reply_format, **({"state": True} if job.keep_state else {}), **(written_as or {})}
    return FrameRequest(data, meta["format"], frame=job.plan.frame, extras=extras, params=job.plan.params,
                        output=output, blend_share=job.blend[1] if job.blend else None)


def _file_payload(path: str) -> tuple[bytes, dict]:
    fmt = FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise ValueError(f"cannot dream {path}: unsupported file type")
    try:
        with open(path, "rb") as f:
            return f.read(), {"format": fmt}
    except OSError as err:  # not a lost server: no reconnect for this
        raise ValueError(f"cannot read the frame {path}: {err.strerror}") from None


class _Sequence:
    """The jobs of the sequence on the server now, and how to make it again
    on a fresh connection: the latest state kept, and the jobs done since."""

    def __init__(self, first: Job) -> None:
        self.state = first.state  # the latest carried state (None: the sequence's start, afresh)
        self.state_link: Optional[str] = None  # the link it was kept under, if kept by us
        self.done_since: list[Job] = []  # jobs done after that state
        self.job_id = ""

    def done(self, job: Job, state: Optional[bytes]) -> None:
        if state is not None:
            self.state, self.state_link, self.done_since = state, job.link, []
        else:
            self.done_since.append(job)


class DreamWorker:
    """A thread that dreams queued jobs in order, keeping up to two on the
    server so the next one travels while the current one dreams. Its
    messages (:data:`Message`) arrive on ``messages``. A lost connection is
    made again (a server the add-on started is restarted) and the sequence
    carries on exactly: from the latest state kept, after dreaming again,
    unwritten, the frames done since."""

    IN_FLIGHT = 2

    def __init__(self, link: ServerLink, job: str, reply=reply_as_target, records: Optional[Records] = None,
                 written_as=None) -> None:
        self.link = link
        self.job = job
        self.reply = reply  # plan -> (where the dream is written, in which format)
        self.written_as = written_as or (lambda plan: {})  # plan -> more output fields of its reply (dither)
        self.records = records  # where kept states go
        self.todo: "queue.Queue[Union[Job, Prepare, None]]" = queue.Queue()
        self.prepared = False
        self.messages: "queue.Queue[Message]" = queue.Queue()
        self.cancelled = threading.Event()
        self.stopping = False
        self.sequence: Optional[_Sequence] = None
        self.segments = 0
        self.passing: list[str] = []  # links of the passing states this worker kept
        self.thread = threading.Thread(target=self._run, name="dream-renders", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        self.todo.put(job)

    def prepare(self, params: dict, width: int, height: int) -> None:
        """Called as the first frame to dream starts rendering: the server
        (started now if need be) loads the model and builds its compiled
        engines for this size while Blender renders. Once a run."""
        if not self.prepared:
            self.prepared = True
            self.todo.put(Prepare(params, width, height))

    def cancel(self) -> None:
        """Stops at once: frames on the server are cancelled, none is written after."""
        self.cancelled.set()
        self.todo.put(None)

    def finish(self) -> None:
        """Stops once the frames submitted so far are done."""
        self.todo.put(None)

    def _run(self) -> None:
        client = None
        pending: Optional[Job] = None
        try:
            while not self.stopping and not self.cancelled.is_set():
                first = pending or self.todo.get()
                pending = None
                if first is None or self.cancelled.is_set():
                    return
                if isinstance(first, Prepare):
                    client = self._prepared(client, first)
                    continue
                if first.starts or self.sequence is None:
                    self._start(first)
                client, pending = self._dream_with_retry(client, [first])
        except BaseException as err:  # a worker that dies silently would hang the run
            self.messages.put(FrameFailed(None, f"the dream worker stopped: {type(err).__name__}: {err}"))
        finally:
            if client is not None:
                client.close()

    def _prepared(self, client: Optional[DreamClient], prepare: Prepare) -> Optional[DreamClient]:
        """Tells the server what is coming, connecting first if need be.
        Anything that goes wrong here is left for the first frame to meet
        and report: the frame rendering now may turn out to have a current
        dream, and a run of such frames needs no server."""
        try:
            client = client or self.link.connect()
        except ConnectionFailed:
            return None
        try:
            client.prepare(prepare.params, prepare.width, prepare.height)
        except ProtocolError:
            pass  # a server without the op, or settings the first frame will be refused for
        except (OSError, EOFError):
            client.close()
            return None
        return client

    def _start(self, first: Job) -> None:
        self.sequence = _Sequence(first)
        self.segments += 1
        self.sequence.job_id = f"{self.job}/{self.segments}"

    def _more(self, taken: list[Job], held: list):
        """The jobs taken, then whatever else of this sequence is queued now
        (without waiting); a job that starts another sequence is ``held``."""
        yield from list(taken)
        while not self.stopping and not held:
            try:
                job = self.todo.get_nowait()
            except queue.Empty:
                return
            if job is None:
                self.stopping = True
                return
            if isinstance(job, Prepare):
                continue  # already dreaming: nothing left to prepare
            if job.starts:
                held.append(job)
                return
            taken.append(job)
            yield job

    def _dream_with_retry(self, client: Optional[DreamClient], taken: list[Job]):
        """Dreams the jobs taken and those queued meanwhile; a dropped
        connection gets one reconnect (which restarts a server the add-on
        started): a new sequence on the server, brought back exactly to
        where this one was, before the error is reported."""
        held: list = []
        for attempt in (1, 2):
            try:
                if client is None:
                    client = self.link.connect()
                self._stream(client, taken, held, restored=attempt > 1)
                return client, (held[0] if held else None)
            except Cancelled:
                self.messages.put(RunCancelled(_first_frame(taken)))
                return client, None
            except (OSError, EOFError) as err:
                if client is not None:
                    client.close()
                client = None
                self.sequence.job_id = f"{self.job}/{self.segments}/again"
                if attempt == 2:
                    self.messages.put(FrameFailed(_first_frame(taken), f"lost the dream server: {failure_text(err)}"))
            except ProtocolError as err:
                if err.code != "job_lost" or attempt == 2:
                    self.messages.put(FrameFailed(_first_frame(taken), str(err)))
                    return client, None
                self.sequence.job_id = f"{self.job}/{self.segments}/again"  # the server let it go: as if restarted
            except ConnectionFailed as err:
                self.messages.put(FrameFailed(_first_frame(taken, list(self.todo.queue)), str(err)))
                return None, None
            except (ValueError, WriteFailed) as err:
                self.messages.put(FrameFailed(_first_frame(taken), str(err)))
                return client, None
        return client, None

    def _stream(self, client: DreamClient, taken: list[Job], held: list, restored: bool) -> None:
        """Streams the jobs; ``restored``: on a new connection, the sequence
        is first made again from its latest state and the jobs done since."""
        sequence = self.sequence
        replay = []
        if restored:
            replay = [replace(job, replay=True, keep_state=None, blend=None) for job in sequence.done_since]
            sequence.done_since = []
        send_state = restored or taken[0].starts
        requests = (frame_request(job, self.reply(job.plan)[1], sequence.state if send_state and i == 0 else None,
                                  self.written_as(job.plan))
                    for i, job in enumerate(_chain(list(replay), self._more(taken, held))))
        stream = client.dream_many(requests, job=sequence.job_id, in_flight=self.IN_FLIGHT, progress=self._progress,
                                   should_cancel=self.cancelled.is_set)
        try:
            for result in stream:
                self._done(replay.pop(0) if replay else taken.pop(0), result)
        finally:
            stream.close()  # frames still on the server are cancelled

    def _done(self, job: Job, result) -> None:
        state = result.state
        if job.keep_state and state is None:
            raise ValueError(f"frame {job.plan.frame}: the server sent no carried state "
                             f"({result.header.get('state_omitted', 'not asked for')})")
        if state is not None and self.records is not None:
            self.records.keep_state(job.link, state)
            for older in self.passing:  # a newer state supersedes them (they are large)
                self.records.drop_state(older)
            self.passing = [job.link] if job.keep_state == "passing" else []
        self.sequence.done(job, state)
        if job.replay:
            return
        written = self.reply(job.plan)[0]
        _write(written, result.data)
        self.messages.put(FrameDone(job.plan.frame, job.plan.target, written, job.link, state is not None))

    def _progress(self, event: dict) -> None:
        if event.get("event") == "progress":
            total = event["octaves"] * event["iterations"]
            done = (event["octave"] - 1) * event["iterations"] + event["iteration"]
            self.messages.put(FrameProgress(event.get("frame"), done / max(1, total)))


def _chain(*iterables):
    for iterable in iterables:
        yield from iterable


class WriteFailed(Exception):
    """A dreamed frame could not be written: not the server's fault, no retry."""


def _write(path: str, data: bytes) -> None:
    try:
        write_atomically(path, data)
    except OSError as err:
        raise WriteFailed(f"cannot write the dreamed frame {path}: {why_not_written(err)}") from None


def why_not_written(err: Exception, path: Optional[str] = None) -> str:
    """An OSError, or the RuntimeError of Blender's image writer: "the disk
    is full" said as such. Blender's writer names some causes vaguely
    ("Invalid argument" for a folder nobody may write in): with ``path``
    (the file it tried to write) the system is asked directly first."""
    if isinstance(err, OSError):
        return "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    if path is not None:
        try:
            with open(path, "ab"):
                pass
            os.remove(path)
        except OSError as refused:
            return why_not_written(refused)
    text = str(err).strip()
    return "the disk is full" if "No space left" in text else text


def _first_frame(taken: list[Job], queued=()) -> Optional[int]:
    """The frame a message is about: the first not yet done that is to be
    written (taken, or still queued behind frames dreamed again)."""
    jobs = [job for job in [*taken, *queued] if job is not None]
    frames = [job.plan.frame for job in jobs if not job.replay] or [job.plan.frame for job in jobs]
    return frames[0] if frames else None
