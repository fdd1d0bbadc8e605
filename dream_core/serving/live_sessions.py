"""Live Dream on the server: the ``live`` op's requests as :class:`LiveTask`s,
each connection's live sessions (:class:`LiveSessions`), and the device
thread's side of an update (:func:`run_live`).

Latest wins. A session remembers which of its updates is the newest: an
older one still queued is answered ``superseded`` as soon as a newer one
arrives (the worker skips it, costing nothing), and one running when a
newer capture of a *changed* view arrives stops at its next iteration (what
it finished is kept and carried into the newer one). A newer capture of the
same view lets the running one finish: it only deepens the same dream.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from ..config import DreamSettings
from ..engine import Dreamer, image_tensor, tensor_pixels
from ..frame.live_dream import DEFAULT_BUDGET, LiveDream
from ..io.transfer import srgb_to_linear
from ..wire import protocol as P
from .codec import request_settings, to_raw
from .tasks import ErrorEvent

ROWS = ("top_down", "bottom_up")  # bottom_up: the first row is the image's bottom (OpenGL's, Blender's textures)
MAX_BUDGET = 100.0


@dataclass(eq=False)  # a task is itself: compared by identity
class LiveTask:
    """One capture of a live view to dream a little deeper."""

    settings: DreamSettings
    session: str
    pixels: np.ndarray  # H×W×3 float32 in [0, 1], the first row the top
    capture: bytes  # the capture as sent: a newer one that differs is a changed view
    bottom_up: bool = False  # the reply's rows go back in the order they came
    budget: float = DEFAULT_BUDGET
    dtype: str = "uint8"  # of the reply's raw RGBA
    linear: bool = False  # the reply's colours decoded from sRGB to linear (a float32 reply drawn as linear light)
    owner: int = 0
    events: "queue.Queue" = field(default_factory=queue.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)  # the client cancelled, or left
    newer: threading.Event = field(default_factory=threading.Event)  # a newer capture of a changed view waits


@dataclass(frozen=True)
class LiveResult:
    """The worker's answer to a live update: RGBA pixels (H×W×4 float32,
    opaque, rows as sent) and how deep the dream is."""

    pixels: np.ndarray
    depth: float
    full: bool
    iterations: int
    moved: bool


def decode_live(header: dict, payloads: list[bytes], weights_dir: Optional[str] = None) -> LiveTask:
    """A ``live`` request: ``session``, ``params`` (a dream's), one raw
    ``image`` payload (uint8, 3 or 4 channels; the 4th is ignored), and
    optionally ``rows``, ``budget`` (full-size ascent iterations' worth of
    work an update may do) and ``output`` ({"dtype": "uint8" or
    "float32", "linear": the colours as linear light, for a viewer that
    draws into an sRGB framebuffer, as Blender's draw handlers do})."""
    session = header.get("session")
    if not isinstance(session, str) or not 0 < len(session) <= 200:
        raise P.ProtocolError("bad_header", "live needs a session: a string of 1 to 200 characters")
    metas = header.get("payloads", [])
    if len(metas) != 1 or metas[0].get("name") != "image" or metas[0].get("format") != "raw":
        raise P.ProtocolError("bad_header", "live takes one payload: the capture, a raw 'image'")
    height, width, channels, dtype = P.check_raw(metas[0], len(payloads[0]))
    if dtype != "uint8" or channels not in (3, 4):
        raise P.ProtocolError("bad_header", "a live capture is raw uint8 RGB or RGBA")
    settings = request_settings(header, weights_dir)
    if settings.objects is not None:
        raise P.ProtocolError("bad_params", "object strengths need a render's Cryptomatte pass, which a live view "
                                            "has not: Live Dream dreams every object alike")
    rows = header.get("rows", "top_down")
    if rows not in ROWS:
        raise P.ProtocolError("bad_header", f"rows must be one of {', '.join(ROWS)}")
    budget = header.get("budget", DEFAULT_BUDGET)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0.1 <= budget <= MAX_BUDGET:
        raise P.ProtocolError("bad_header", f"budget must be a number from 0.1 to {MAX_BUDGET:g}")
    out = header.get("output") or {}
    if not isinstance(out, dict) or out.get("dtype", "uint8") not in ("uint8", "float32"):
        raise P.ProtocolError("bad_header", "a live reply's dtype is uint8 or float32")
    if not isinstance(out.get("linear", False), bool):
        raise P.ProtocolError("bad_header", "output linear must be true or false")
    image = np.frombuffer(payloads[0], np.uint8).reshape(height, width, channels)[..., :3]
    if rows == "bottom_up":
        image = image[::-1]
    pixels = image.astype(np.float32) / 255.0
    return LiveTask(settings, session, pixels, bytes(payloads[0]), rows == "bottom_up", float(budget),
                    out.get("dtype", "uint8"), out.get("linear", False))


def live_reply(header: dict, task: LiveTask, result: LiveResult) -> tuple[dict, list]:
    """The result message: the dream as raw RGBA, and how deep it is."""
    height, width = result.pixels.shape[:2]
    meta = {"name": "image", "format": "raw", "dtype": task.dtype, "shape": [height, width, 4]}
    reply = {"event": "result", "id": header.get("id"), "op": "live", "session": task.session, "width": width,
             "height": height, "depth": round(result.depth, 4), "full": result.full,
             "iterations": result.iterations, "moved": result.moved, "payloads": [meta]}
    return reply, [to_raw(result.pixels, task.dtype)]


@dataclass
class _Session:
    dream: LiveDream = field(default_factory=LiveDream)
    latest: Optional[LiveTask] = None
    running: Optional[LiveTask] = None
    touched: float = field(default_factory=time.monotonic)


class LiveSessions:
    """The live sessions of every connection, by (connection, session id):
    private to their connection, capped (least recently used let go)."""

    def __init__(self, per_connection: int = 4, total: int = 16) -> None:
        self.per_connection = per_connection
        self.total = total
        self.lock = threading.Lock()
        self.sessions: "OrderedDict[tuple[int, str], _Session]" = OrderedDict()

    def __len__(self) -> int:
        return len(self.sessions)

    def submit(self, task: LiveTask) -> None:
        """``task`` is now its session's newest update (called as it is queued)."""
        key = (task.owner, task.session)
        with self.lock:
            session = self.sessions.get(key)
            if session is None:
                session = self.sessions[key] = _Session(LiveDream(task.budget))
            self.sessions.move_to_end(key)
            waiting, running = session.latest, session.running
            session.latest = task
            session.touched = time.monotonic()
            if waiting is not None and waiting is not running:  # answered now: its relay ends, the worker skips it
                waiting.events.put(ErrorEvent("superseded", "a newer capture of this live view came first"))
            if running is not None and running.capture != task.capture:
                running.newer.set()
            self._keep_within_caps(task.owner)

    def _keep_within_caps(self, owner: int) -> None:
        mine = [k for k in self.sessions if k[0] == owner]
        for key in mine[:max(0, len(mine) - self.per_connection)]:
            self._drop(key)
        for key in list(self.sessions)[:max(0, len(self.sessions) - self.total)]:
            self._drop(key)

    def _drop(self, key: tuple[int, str]) -> None:
        session = self.sessions.pop(key)
        for task in (session.latest, session.running):
            if task is not None:
                task.cancel.set()

    def take(self, task: LiveTask) -> Union[_Session, ErrorEvent]:
        """On the device thread: the session to dream ``task`` in, or why not."""
        with self.lock:
            session = self.sessions.get((task.owner, task.session))
            if session is None:
                return ErrorEvent("cancelled", "the live session was closed")
            if session.latest is not task:
                return ErrorEvent("superseded", "a newer capture of this live view came first")
            session.running = task
            session.dream.budget = task.budget
            return session

    def finished(self, session: _Session) -> None:
        with self.lock:
            session.running = None
            session.touched = time.monotonic()

    def close(self, owner: int, session_id: str) -> bool:
        with self.lock:
            if (owner, session_id) not in self.sessions:
                return False
            self._drop((owner, session_id))
            return True

    def close_owner(self, owner: int) -> None:
        with self.lock:
            for key in [k for k in self.sessions if k[0] == owner]:
                self._drop(key)

    def forget_idle(self, seconds: float) -> None:
        now = time.monotonic()
        with self.lock:
            for key in [k for k, s in self.sessions.items() if s.running is None and now - s.touched > seconds]:
                self._drop(key)


def run_live(sessions: LiveSessions, task: LiveTask, dreamer: Dreamer) -> Union[LiveResult, ErrorEvent]:
    """One live update on the device thread: latest wins (see the module's
    docstring); a client's cancel stops it too."""
    taken = sessions.take(task)
    if isinstance(taken, ErrorEvent):
        return taken
    try:
        update = taken.dream.update(dreamer, image_tensor(task.pixels, dreamer.device), task.settings,
                                    should_stop=lambda: task.cancel.is_set() or task.newer.is_set())
    finally:
        sessions.finished(taken)
    if update.stopped:
        if task.cancel.is_set():
            return ErrorEvent("cancelled", "cancelled by the client")
        return ErrorEvent("superseded", "stopped for a newer capture of this live view (its work is kept)")
    rgb = tensor_pixels(srgb_to_linear(update.image) if task.linear else update.image)
    if task.bottom_up:
        rgb = rgb[::-1]
    rgba = np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1)
    return LiveResult(np.ascontiguousarray(rgba), update.depth, update.full, update.iterations, update.moved)
