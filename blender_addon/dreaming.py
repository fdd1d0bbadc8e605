"""Dreaming files on the server from a worker thread. No bpy here: the
thread reads a rendered frame, sends it, and writes the dreamed frame
atomically; the main thread drains its events (Blender's data may only be
touched from the main thread)."""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass, field

from .dream_atomic import write_atomically
from .dream_client import Cancelled, DreamClient, FrameRequest
from .dream_protocol import ProtocolError
from .server_link import ConnectionFailed, ServerLink

FORMATS = {".png": "png", ".exr": "exr", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
           ".webp": "webp"}


@dataclass
class FrameWork:
    frame: int
    source: str
    target: str
    params: dict = field(default_factory=dict)
    job: str | None = None
    resume: tuple[str, str] | None = None  # the frame before's render and dream, sent in case the server lost the job


def frame_request(work: FrameWork) -> FrameRequest:
    """The rendered file as a request: its bytes as they are on disk, and the
    target's format for the reply."""
    data, meta = _file_payload(work.source)
    extras = {}
    if work.resume is not None:
        for name, path in zip(("previous_render", "previous_dream"), work.resume):
            extras[name] = _file_payload(path)
    out_fmt = FORMATS.get(os.path.splitext(work.target)[1].lower(), "png")
    return FrameRequest(data, meta["format"], frame=work.frame, extras=extras, params=work.params,
                        output={"format": out_fmt})


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
    """A thread that dreams queued frames in order, keeping up to two on
    the server so the next one travels while the current one dreams.
    Events on ``events``: ("progress", frame, fraction), ("done", frame,
    target), ("error", frame, message), ("cancelled", frame)."""

    IN_FLIGHT = 2

    def __init__(self, link: ServerLink) -> None:
        self.link = link
        self.todo: "queue.Queue[FrameWork | None]" = queue.Queue()
        self.events: "queue.Queue[tuple]" = queue.Queue()
        self.cancelled = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="dream-renders", daemon=True)
        self.thread.start()

    def submit(self, work: FrameWork) -> None:
        self.todo.put(work)

    def cancel(self) -> None:
        self.cancelled.set()
        self.todo.put(None)

    def finish(self) -> None:
        self.todo.put(None)

    def _run(self) -> None:
        client = None
        try:
            while not self.stopping and not self.cancelled.is_set():
                first = self.todo.get()
                if first is None or self.cancelled.is_set():
                    return
                client = self._dream_with_retry(client, [first])
        finally:
            if client is not None:
                client.close()

    def _more(self, taken: list[FrameWork]):
        """The frames taken, then whatever else is queued now (without waiting)."""
        yield from list(taken)
        while not self.stopping:
            try:
                work = self.todo.get_nowait()
            except queue.Empty:
                return
            if work is None:
                self.stopping = True
                return
            taken.append(work)
            yield work

    def _dream_with_retry(self, client, taken: list[FrameWork]):
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
                self.events.put(("cancelled", _first_frame(taken)))
                return client
            except (OSError, EOFError) as err:
                if client is not None:
                    client.close()
                client = None
                if attempt == 2:
                    self.events.put(("error", _first_frame(taken), f"lost the dream server: {err}"))
            except ConnectionFailed as err:
                self.events.put(("error", _first_frame(taken), str(err)))
                return None
            except (ProtocolError, ValueError) as err:
                self.events.put(("error", _first_frame(taken), str(err)))
                return client
        return client

    def _stream(self, client: DreamClient, taken: list[FrameWork]) -> None:
        works = self._more(taken)
        requests = (frame_request(work) for work in works)
        job = taken[0].job
        stream = client.dream_many(requests, job=job, in_flight=self.IN_FLIGHT, progress=self._progress,
                                   should_cancel=self.cancelled.is_set)
        for result in stream:
            work = taken.pop(0)
            write_atomically(work.target, result.data)
            self.events.put(("done", work.frame, work.target))

    def _progress(self, event: dict) -> None:
        if event.get("event") == "progress":
            total = event["octaves"] * event["iterations"]
            done = (event["octave"] - 1) * event["iterations"] + event["iteration"]
            self.events.put(("progress", event.get("frame"), done / max(1, total)))


def _first_frame(taken: list[FrameWork]) -> int | None:
    """The frame an event is about: the first not yet done."""
    return taken[0].frame if taken else None
