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
from .dream_client import Cancelled, DreamClient
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


def dream_file(client: DreamClient, work: FrameWork, progress=None, should_cancel=None) -> None:
    fmt = FORMATS.get(os.path.splitext(work.source)[1].lower())
    if fmt is None:
        raise ValueError(f"cannot dream {work.source}: unsupported file type")
    with open(work.source, "rb") as f:
        data = f.read()
    out_fmt = FORMATS.get(os.path.splitext(work.target)[1].lower(), "png")
    result = client.dream(data, fmt, work.params, job=work.job, frame=work.frame, output={"format": out_fmt},
                          progress=progress, should_cancel=should_cancel)
    write_atomically(work.target, result.data)


class DreamWorker:
    """A thread that dreams queued frames in order. Events on ``events``:
    ("progress", frame, fraction), ("done", frame, target),
    ("error", frame, message), ("cancelled", frame)."""

    def __init__(self, link: ServerLink) -> None:
        self.link = link
        self.todo: "queue.Queue[FrameWork | None]" = queue.Queue()
        self.events: "queue.Queue[tuple]" = queue.Queue()
        self.cancelled = threading.Event()
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
            while True:
                work = self.todo.get()
                if work is None or self.cancelled.is_set():
                    return
                client = self._dream_with_retry(client, work)
        finally:
            if client is not None:
                client.close()

    def _dream_with_retry(self, client, work: FrameWork):
        """Dreams one frame; a dropped connection gets one reconnect (which
        restarts a server the add-on started) before the error is reported."""
        for attempt in (1, 2):
            try:
                if client is None:
                    client = self.link.connect()
                dream_file(client, work, lambda e: self._progress(work, e), self.cancelled.is_set)
                self.events.put(("done", work.frame, work.target))
                return client
            except Cancelled:
                self.events.put(("cancelled", work.frame))
                return client
            except (OSError, EOFError) as err:
                if client is not None:
                    client.close()
                client = None
                if attempt == 2:
                    self.events.put(("error", work.frame, f"lost the dream server: {err}"))
            except ConnectionFailed as err:
                self.events.put(("error", work.frame, str(err)))
                return None
            except (ProtocolError, ValueError) as err:
                self.events.put(("error", work.frame, str(err)))
                return client
        return client

    def _progress(self, work: FrameWork, event: dict) -> None:
        if event.get("event") == "progress":
            total = event["octaves"] * event["iterations"]
            done = (event["octave"] - 1) * event["iterations"] + event["iteration"]
            self.events.put(("progress", work.frame, done / max(1, total)))
