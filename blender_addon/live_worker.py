"""Live Dream's worker thread: captures to the dream server and dreams back.
No bpy: the main thread leaves a :class:`Capture` in a
:class:`~.live_pacing.LatestSlot` and drains this thread's messages
(:class:`LiveFrame`, :class:`LiveProblem`) from a queue; it never waits on
the server. One update in flight at a time: the next capture is taken when
the last dream is back, so none is old when it is sent."""
from __future__ import annotations

import queue
import threading
import uuid
from dataclasses import dataclass
from typing import Callable, Optional, Union

from .live_pacing import LatestSlot
from .server_link import ConnectionFailed
from .wire.client import DreamClient, ServerTimeout
from .wire.protocol import ProtocolError, failure_text

IDLE_CHECK = 0.5  # s between looks at an idle connection: how soon a lost server is told while the view is still
OLD_SERVER = ("this dream server has no Live Dream (it is older than the add-on): update it (Install Dream "
              "Server again, or restart the server from this version)")


@dataclass(frozen=True)
class Capture:
    """The view as the artist sees it: raw RGBA bytes, rows bottom first
    (as Blender reads a texture), and the settings to dream it with."""

    pixels: bytes
    width: int
    height: int
    captured_at: float  # time.monotonic() when the capture was read
    params: dict


@dataclass(frozen=True)
class LiveFrame:
    """A dreamed image: float32 RGBA bytes of linear light (as Blender's
    draw handlers take colours), rows bottom first, of ``capture``'s size."""

    pixels: bytes
    width: int
    height: int
    captured_at: float
    depth: float  # 0-1: how far the dream has grown towards the settings' full dream
    full: bool  # an unchanged view would gain nothing more


@dataclass(frozen=True)
class LiveProblem:
    """Why a capture was not dreamed; ``fatal``: Live Dream cannot go on (no
    server, a lost server, an old server); otherwise (a setting the server
    refuses) the next capture with other settings may work."""

    message: str
    fatal: bool


Message = Union[LiveFrame, LiveProblem]


class LiveWorker:
    """Owns the connection and the server's live session for one view.
    ``connect`` returns a connected client (the add-on's server link:
    started or reached as the other operators do)."""

    def __init__(self, connect: Callable[[], DreamClient], budget: Optional[float] = None) -> None:
        self.connect = connect
        self.budget = budget
        self.session = f"live-{uuid.uuid4().hex[:12]}"
        self.slot: LatestSlot[Capture] = LatestSlot()
        self.messages: "queue.Queue[Message]" = queue.Queue()
        self._stopping = threading.Event()
        self._sending = False
        self.thread = threading.Thread(target=self._run, name="dream-renders-live", daemon=True)
        self.thread.start()

    @property
    def ready(self) -> bool:
        """Whether a capture left now would be sent at once (nothing in flight, none waiting)."""
        return not self._sending and self.slot.empty and self.thread.is_alive()

    def offer(self, capture: Capture) -> None:
        self._sending = True  # taken at once by the waiting thread: not ready meanwhile
        self.slot.put(capture)

    def stop(self) -> None:
        """Ends the session; returns at once (the thread closes it after the update in flight, if any)."""
        self._stopping.set()
        self.slot.close()

    def _run(self) -> None:
        try:
            client = self.connect()
        except ConnectionFailed as err:
            self.messages.put(LiveProblem(str(err), True))
            return
        except Exception as err:  # reported, never a silent dead thread
            self.messages.put(LiveProblem(f"{type(err).__name__}: {err}", True))
            return
        try:
            self._serve(client)
        finally:
            self._sending = False
            try:
                client.close_job(self.session)
            except (OSError, EOFError, ProtocolError):
                pass  # the connection closing ends the session on the server too
            client.close()

    def _serve(self, client: DreamClient) -> None:
        while not self._stopping.is_set():
            capture = self.slot.take(timeout=IDLE_CHECK)
            if capture is None:
                if client.hung_up():  # a still view sends nothing: a lost server is seen here, not at the next move
                    self.messages.put(LiveProblem("lost the dream server: it closed the connection", True))
                    return
                continue
            try:
                reply = client.live(self.session, capture.pixels, capture.width, capture.height, capture.params,
                                    rows="bottom_up", budget=self.budget, dtype="float32", linear=True)
            except ServerTimeout as err:
                self.messages.put(LiveProblem(f"the dream server stopped answering: {err.message}", True))
                return
            except ProtocolError as err:
                if err.code == "superseded":
                    continue
                fatal = err.code in ("unknown_op", "bad_version", "shutting_down")
                self.messages.put(LiveProblem(OLD_SERVER if err.code == "unknown_op" else err.message, fatal))
                if fatal:
                    return
            except (OSError, EOFError) as err:
                self.messages.put(LiveProblem(f"lost the dream server: {failure_text(err)}", True))
                return
            else:  # told before the worker says it is ready again: the main thread paces by the last dream
                self.messages.put(LiveFrame(reply.data, capture.width, capture.height, capture.captured_at,
                                            reply.depth, reply.full))
            finally:
                self._sending = not self.slot.empty
