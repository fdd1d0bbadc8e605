"""Dreaming files on the server from a worker thread. No bpy here: the
thread reads a rendered frame, sends it, and writes the dreamed frame
atomically; the main thread drains its messages (Blender's data may only be
touched from the main thread). Messages are small classes, told apart with
``isinstance``."""
from __future__ import annotations

import errno
import os
import queue
import threading
from dataclasses import dataclass
from typing import Optional, Union

from .server_link import ConnectionFailed, ServerLink
from .wire.atomic import write_atomically
from .wire.client import Cancelled, DreamClient, FrameRequest
from .wire.plans import FramePlan
from .wire.protocol import ProtocolError

FORMATS = {".png": "png", ".exr": "exr", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
           ".webp": "webp"}


@dataclass(frozen=True)
class FrameProgress:
    frame: Optional[int]
    fraction: float  # of this frame's steps


@dataclass(frozen=True)
class FrameDone:
    frame: int
    target: str
    written: str  # the file the dream was written to: ``target``, or a scene-linear EXR to convert into it


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
class _Queued:
    plan: FramePlan
    resume: Optional[FramePlan]  # the frame before, sent in case the server lost the job


def frame_request(plan: FramePlan, resume: Optional[FramePlan] = None, reply_format: str = "png") -> FrameRequest:
    """The rendered file as a request: its bytes as they are on disk, the
    frame's own settings, and the format of the reply."""
    data, meta = _file_payload(plan.source)
    extras = {}
    if resume is not None:
        extras = {"previous_render": _file_payload(resume.source), "previous_dream": _file_payload(resume.target)}
    return FrameRequest(data, meta["format"], frame=plan.frame, extras=extras, params=plan.params,
                        output={"format": reply_format})


def reply_as_target(plan: FramePlan) -> tuple[str, str]:
    """The reply goes straight to the target, in the target's format."""
    return plan.target, FORMATS.get(os.path.splitext(plan.target)[1].lower(), "png")


def reply_as_linear(plan: FramePlan) -> tuple[str, str]:
    """The reply is scene-linear EXR in ``linear/`` beside the target's
    folder (``//dream/frames/X.png`` -> ``//dream/linear/X.exr``), for Blender
    to write into the target with the scene's colour management; it is kept,
    for a resumed run to carry on from."""
    folder, name = os.path.split(plan.target)
    return os.path.join(os.path.dirname(folder), "linear", os.path.splitext(name)[0] + ".exr"), "exr"


def _file_payload(path: str) -> tuple[bytes, dict]:
    fmt = FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise ValueError(f"cannot dream {path}: unsupported file type")
    try:
        with open(path, "rb") as f:
            return f.read(), {"format": fmt}
    except OSError as err:  # not a lost server: no reconnect for this
        raise ValueError(f"cannot read the frame {path}: {err.strerror}") from None


class DreamWorker:
    """A thread that dreams queued frames of one job in order, keeping up to
    two on the server so the next one travels while the current one dreams.
    Its messages (:data:`Message`) arrive on ``messages``."""

    IN_FLIGHT = 2

    def __init__(self, link: ServerLink, job: str, reply=reply_as_target) -> None:
        self.link = link
        self.job = job
        self.reply = reply  # plan -> (where the dream is written, in which format)
        self.todo: "queue.Queue[Optional[_Queued]]" = queue.Queue()
        self.messages: "queue.Queue[Message]" = queue.Queue()
        self.cancelled = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="dream-renders", daemon=True)
        self.thread.start()

    def submit(self, plan: FramePlan, resume: Optional[FramePlan] = None) -> None:
        self.todo.put(_Queued(plan, resume))

    def cancel(self) -> None:
        """Stops at once: frames on the server are cancelled, none is written after."""
        self.cancelled.set()
        self.todo.put(None)

    def finish(self) -> None:
        """Stops once the frames submitted so far are done."""
        self.todo.put(None)

    def _run(self) -> None:
        client = None
        try:
            while not self.stopping and not self.cancelled.is_set():
                first = self.todo.get()
                if first is None or self.cancelled.is_set():
                    return
                client = self._dream_with_retry(client, [first])
        except BaseException as err:  # a worker that dies silently would hang the run
            self.messages.put(FrameFailed(None, f"the dream worker stopped: {type(err).__name__}: {err}"))
        finally:
            if client is not None:
                client.close()

    def _more(self, taken: list[_Queued]):
        """The frames taken, then whatever else is queued now (without waiting)."""
        yield from list(taken)
        while not self.stopping:
            try:
                queued = self.todo.get_nowait()
            except queue.Empty:
                return
            if queued is None:
                self.stopping = True
                return
            taken.append(queued)
            yield queued

    def _dream_with_retry(self, client: Optional[DreamClient], taken: list[_Queued]) -> Optional[DreamClient]:
        """Dreams the frames taken and those queued meanwhile; a dropped
        connection gets one reconnect (which restarts a server the add-on
        started) for the frames not yet done before the error is reported."""
        for attempt in (1, 2):
            try:
                if client is None:
                    client = self.link.connect()
                self._stream(client, taken)
                return client
            except Cancelled:
                self.messages.put(RunCancelled(_first_frame(taken)))
                return client
            except (OSError, EOFError) as err:
                if client is not None:
                    client.close()
                client = None
                if attempt == 2:
                    self.messages.put(FrameFailed(_first_frame(taken), f"lost the dream server: {err}"))
            except ConnectionFailed as err:
                self.messages.put(FrameFailed(_first_frame(taken), str(err)))
                return None
            except (ProtocolError, ValueError, WriteFailed) as err:
                self.messages.put(FrameFailed(_first_frame(taken), str(err)))
                return client
        return client

    def _stream(self, client: DreamClient, taken: list[_Queued]) -> None:
        requests = (frame_request(q.plan, q.resume, self.reply(q.plan)[1]) for q in self._more(taken))
        stream = client.dream_many(requests, job=self.job, in_flight=self.IN_FLIGHT, progress=self._progress,
                                   should_cancel=self.cancelled.is_set)
        try:
            for result in stream:
                plan = taken[0].plan
                written = self.reply(plan)[0]
                _write(written, result.data)
                taken.pop(0)
                self.messages.put(FrameDone(plan.frame, plan.target, written))
        finally:
            stream.close()  # frames still on the server are cancelled

    def _progress(self, event: dict) -> None:
        if event.get("event") == "progress":
            total = event["octaves"] * event["iterations"]
            done = (event["octave"] - 1) * event["iterations"] + event["iteration"]
            self.messages.put(FrameProgress(event.get("frame"), done / max(1, total)))


class WriteFailed(Exception):
    """A dreamed frame could not be written: not the server's fault, no retry."""


def _write(path: str, data: bytes) -> None:
    try:
        write_atomically(path, data)
    except OSError as err:
        raise WriteFailed(f"cannot write the dreamed frame {path}: {why_not_written(err)}") from None


def why_not_written(err: Exception) -> str:
    """An OSError, or the RuntimeError of Blender's image writer: "the disk is full" said as such."""
    if isinstance(err, OSError):
        return "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    text = str(err).strip()
    return "the disk is full" if "No space left" in text else text


def _first_frame(taken: list[_Queued]) -> Optional[int]:
    """The frame a message is about: the first not yet done."""
    return taken[0].plan.frame if taken else None
