"""Client of the dream server. Standard library only: it runs inside
Blender's Python, which may lack NumPy, and is bundled into the add-on.

    server = spawn_server(sys.executable)          # wire.spawn; or connect to a running one
    with DreamClient(server.address, server.token) as client:
        info = client.hello()
        result = client.dream(png_bytes, "png", {"layer": "block9"}, progress=print)
    server.stop()
"""
from __future__ import annotations

import collections
import itertools
import socket
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Union

from . import protocol as P

ProgressFn = Callable[[dict], None]


class ServerTimeout(P.ProtocolError):
    def __init__(self, seconds: float) -> None:
        super().__init__("timeout", f"the dream server sent nothing for {seconds:.0f} s; it may have died "
                                    "or hung")


class Cancelled(P.ProtocolError):
    def __init__(self) -> None:
        super().__init__("cancelled", "cancelled")


@dataclass
class FrameRequest:
    """One frame for :meth:`DreamClient.dream_many`: encoded bytes of ``fmt``,
    or raw pixels described by ``raw``. ``extras`` adds payloads by name, as
    (bytes, description such as {"format": "png"}): ``vectors`` (Blender's
    Vector pass, raw, when the frame travels without it), and to resume a
    sequence exactly ``previous_state`` (a result's ``state``), or approximately
    ``previous_render``, ``previous_dream``, ``previous_vectors``."""

    image: bytes
    fmt: str
    frame: Optional[int] = None
    raw: Optional[dict] = None
    extras: dict[str, tuple[bytes, dict]] = field(default_factory=dict)
    params: Optional[dict] = None  # this frame's settings (e.g. keyframed), instead of the stream's
    output: Optional[dict] = None  # this frame's output format, instead of the stream's
    blend_share: Optional[float] = None  # with a ``blend_with`` extra: the reply is the dream cross-faded into it


@dataclass
class DreamResult:
    data: bytes  # the dreamed image, in ``meta["format"]``
    meta: dict  # the payload's description (format, and for raw: dtype, shape)
    header: dict
    state: Optional[bytes] = None  # the sequence's carried state after this frame, when ``output`` asked for it


@dataclass
class LiveReply:
    """A live update's dream: raw RGBA (``meta``: dtype, shape), rows in the
    order the capture's came, and how deep the dream is (``depth`` 0-1;
    ``full``: an unchanged view would gain nothing more)."""

    data: bytes
    meta: dict
    depth: float
    full: bool
    iterations: int
    moved: bool


class DreamClient:
    """One authenticated connection. Every read waits at most ``timeout``
    seconds; the server sends a heartbeat every second while a frame is
    queued or running, so a silent server is a dead or hung one."""

    def __init__(self, address: str, token: str, *, timeout: float = 30.0, connect_timeout: float = 10.0,
                 max_payload: int = P.DEFAULT_MAX_PAYLOAD) -> None:
        self.address = address
        self.timeout = timeout
        self.max_payload = max_payload
        self.conn = P.connect(address, token, connect_timeout)
        P.set_connection_read_timeout(self.conn, timeout)
        self._ids = itertools.count(1)
        self.server_info: Optional[dict] = None

    def __enter__(self) -> "DreamClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def hung_up(self) -> bool:
        """Whether the server has closed this connection (stopped, killed, or
        its machine gone), asked while no reply is awaited; reads nothing."""
        try:
            if not self.conn.poll(0):
                return False
            sock = socket.socket(fileno=self.conn.fileno())
            try:
                return sock.recv(1, socket.MSG_PEEK) == b""  # readable with nothing to read: the end
            finally:
                sock.detach()  # the descriptor stays the connection's
        except (ConnectionError, EOFError):
            return True
        except OSError:  # closed on this side: not the server's doing
            return False

    # --- plumbing --------------------------------------------------------------

    def _receive(self) -> tuple[dict, list[bytes]]:
        if not self.conn.poll(self.timeout):
            raise ServerTimeout(self.timeout)
        header = P.recv_header(self.conn)
        return header, P.recv_payloads(self.conn, header, self.max_payload)

    def _check_sizes(self, payloads) -> None:
        limit = (self.server_info or {}).get("max_payload")
        too_big = [len(p) for p in payloads if limit and len(p) > limit]
        if too_big:
            raise P.ProtocolError("oversize", f"a {too_big[0] >> 20} MiB payload exceeds the server's limit of "
                                  f"{limit >> 20} MiB (its --max-payload-mb)")

    def _request(self, header: dict, payloads: list[bytes] = ()) -> tuple[dict, list[bytes]]:
        """One request that is not a dream: its final reply."""
        self._check_sizes(payloads)
        request_id = next(self._ids)
        P.send_message(self.conn, dict(header, id=request_id), list(payloads))
        while True:
            reply, data = self._receive()
            if reply.get("id") == request_id and reply.get("event") in ("result", "error"):
                return P.raise_for_error(reply), data

    # --- operations --------------------------------------------------------------

    def hello(self) -> dict:
        """Server facts (version, device, GPU, models); checks the protocol
        version and that the server dreams as this release does (the
        records kept of its dreams name this release's algorithm)."""
        reply, _ = self._request({"op": "hello", "client": "dream_core.client"})
        if reply.get("protocol") != P.PROTOCOL:
            raise P.ProtocolError("bad_version", f"server speaks protocol {reply.get('protocol')}, this client "
                                  f"{P.PROTOCOL}; install matching versions of the add-on and dream_core")
        if reply.get("algorithm", 0) != P.ALGORITHM:  # a server from before the number dreams as algorithm 0
            raise P.ProtocolError("bad_version", f"server dreams with algorithm {reply.get('algorithm', 0)}, this "
                                  f"client's records name algorithm {P.ALGORITHM}; install matching versions of the "
                                  "add-on and dream_core")
        self.server_info = reply
        return reply

    def prepare(self, params: Optional[dict], width: int, height: int) -> dict:
        """Tells the server frames of this size and these settings are coming,
        so it loads and compiles for them now; answered at once."""
        reply, _ = self._request({"op": "prepare", "params": params or {}, "width": width, "height": height})
        return reply

    def dream(self, image: bytes, fmt: str, params: Optional[dict] = None, *, job: Optional[str] = None,
              frame: Optional[int] = None, raw: Optional[dict] = None, vectors: Optional[tuple[bytes, dict]] = None,
              mask: Optional[tuple[bytes, str]] = None, guide: Optional[tuple[bytes, str]] = None,
              output: Optional[dict] = None, progress: Optional[ProgressFn] = None,
              should_cancel: Optional[Callable[[], bool]] = None) -> DreamResult:
        """Dreams one frame. ``image`` is encoded bytes of ``fmt`` (png, exr,
        tiff, jpeg, webp) or raw pixels (``fmt="raw"`` with ``raw={"dtype":
        "float16", "shape": [h, w, c], "linear": bool}``). ``job`` ties
        frames of one sequence together. Raises ProtocolError (``.code``)."""
        extras = {} if vectors is None else {"vectors": (vectors[0], dict(vectors[1], format="raw"))}
        frames = [FrameRequest(image, fmt, frame, raw, extras)]
        for result in self.dream_many(frames, params, job=job, mask=mask, guide=guide, output=output,
                                      in_flight=1, progress=progress, should_cancel=should_cancel):
            return result
        raise AssertionError("unreachable: one frame sent, one result expected")

    def dream_many(self, frames: Iterable["FrameRequest"], params: Optional[dict] = None, *,
                   job: Optional[str] = None, mask: Optional[tuple[bytes, str]] = None,
                   guide: Optional[tuple[bytes, str]] = None, output: Optional[dict] = None, in_flight: int = 2,
                   progress: Optional[ProgressFn] = None,
                   should_cancel: Optional[Callable[[], bool]] = None) -> Iterator[DreamResult]:
        """Dreams frames in order and yields their results in order, keeping
        up to ``in_flight`` frames on the server: the next frame travels and
        is decoded while the current one dreams. Frames of one ``job`` stay
        coherent (the server runs a connection's frames in the order sent).
        Progress events get the request's ``frame`` added. Stopping early
        (an error, a cancel, ``close()`` on the iterator) cancels the frames
        still in flight and leaves the connection usable; a dead or silent
        server closes it at once."""
        if self.server_info is None and in_flight > 1:
            self.hello()  # tells how many frames the server takes at once
        in_flight = max(1, min(in_flight, (self.server_info or {}).get("max_in_flight", 1)))
        source = iter(frames)
        stream = _InFlight(progress, should_cancel)
        broken = False
        try:
            while True:
                while len(stream.pending) < in_flight:
                    request = next(source, None)
                    if request is None:
                        break
                    stream.sent(self._send_dream(request, params, job, mask, guide, output), request.frame)
                if not stream.pending:
                    return
                yield self._next_in_order(stream)
        except (OSError, EOFError, ServerTimeout):
            broken = True  # dead or hung: nothing to drain, and waiting again would double the wait
            raise
        finally:
            if broken:
                self.close()
            elif stream.pending:
                self._abandon(stream.pending, stream.finished)

    def _next_in_order(self, stream: "_InFlight") -> DreamResult:
        """Reads replies until the oldest frame in flight has its outcome."""
        while stream.pending[0] not in stream.finished:
            reply, data = self._receive()
            if stream.is_event(reply):
                if stream.relay(reply):
                    self._send_cancel()
            elif stream.is_final(reply):
                stream.finished[reply["id"]] = self._outcome(reply, data)
        outcome = stream.finished.pop(stream.pending.popleft())
        if isinstance(outcome, P.ProtocolError):
            raise outcome
        return outcome

    def _send_dream(self, request: "FrameRequest", params, job, mask, guide, output) -> int:
        metas = [dict({"name": "image", "format": request.fmt}, **(request.raw or {}))]
        payloads = [request.image]
        for name, (data, meta) in request.extras.items():
            metas.append(dict(meta, name=name))
            payloads.append(data)
        for name, extra in (("mask", mask), ("guide", guide)):
            if extra is not None:
                metas.append({"name": name, "format": extra[1]})
                payloads.append(extra[0])
        self._check_sizes(payloads)
        request_id = next(self._ids)
        header = {"op": "dream", "id": request_id, "params": request.params or params or {}, "job": job,
                  "frame": request.frame, "payloads": metas, "output": request.output or output or {}}
        if request.blend_share is not None:
            header["blend_share"] = request.blend_share
        P.send_message(self.conn, header, payloads)
        return request_id

    @staticmethod
    def _outcome(reply: dict, data: list[bytes]) -> Union[DreamResult, P.ProtocolError]:
        if reply.get("event") == "error" and reply.get("code") == "cancelled":
            return Cancelled()
        try:
            P.raise_for_error(reply)
        except P.ProtocolError as err:
            return err
        states = [d for meta, d in zip(reply["payloads"], data) if meta.get("name") == "state"]
        return DreamResult(data[0], reply["payloads"][0], reply, states[0] if states else None)

    def _send_cancel(self) -> None:
        """Cancels this connection's frames (a cancel without a job)."""
        P.send_message(self.conn, {"op": "cancel", "id": next(self._ids)})

    def _abandon(self, pending, finished) -> None:
        """Cancels the frames still in flight and reads their final replies,
        so the next request on this connection starts clean."""
        waiting = {i for i in pending if i not in finished}
        try:
            if waiting:
                self._send_cancel()
            while waiting:
                reply, _ = self._receive()
                if reply.get("event") in ("result", "error"):
                    waiting.discard(reply.get("id"))
        except (OSError, EOFError, P.ProtocolError):
            self.close()  # cannot resynchronise: nothing more may be read from it

    def live(self, session: str, image: bytes, width: int, height: int, params: Optional[dict] = None, *,
             rows: str = "top_down", budget: Optional[float] = None, dtype: str = "uint8",
             linear: bool = False) -> LiveReply:
        """A live view's capture (raw uint8 RGBA, ``width`` x ``height``,
        rows ``top_down`` or ``bottom_up``) dreamed a little deeper in
        ``session`` (its dream carried from the capture before); the reply
        in ``dtype``, as linear light with ``linear``. Raises
        ProtocolError: ``superseded`` when a newer capture of the session
        came first, ``unknown_op`` from a server older than Live Dream."""
        shape = [height, width, len(image) // max(1, width * height)]
        header = {"op": "live", "session": session, "params": params or {}, "rows": rows,
                  "output": {"dtype": dtype, "linear": linear},
                  "payloads": [{"name": "image", "format": "raw", "dtype": "uint8", "shape": shape}]}
        if budget is not None:
            header["budget"] = budget
        reply, data = self._request(header, [image])
        return LiveReply(data[0], reply["payloads"][0], float(reply.get("depth", 0.0)), bool(reply.get("full")),
                         int(reply.get("iterations", 0)), bool(reply.get("moved")))

    def cancel(self, job: str) -> int:
        reply, _ = self._request({"op": "cancel", "job": job})
        return int(reply.get("cancelled", 0))

    def close_job(self, job: str) -> bool:
        reply, _ = self._request({"op": "close_job", "job": job})
        return bool(reply.get("closed"))

    def echo(self, payloads: list[bytes]) -> list[bytes]:
        """Round trip of raw bytes through the server (transport cost)."""
        metas = [{"name": f"p{i}", "format": "raw"} for i in range(len(payloads))]
        _, data = self._request({"op": "echo", "payloads": metas}, payloads)
        return data

    def shutdown(self) -> None:
        self._request({"op": "shutdown"})


class _InFlight:
    """The frames of one :meth:`DreamClient.dream_many` call on the server:
    their request ids in order, their frame numbers, and outcomes read ahead."""

    def __init__(self, progress: Optional[ProgressFn], should_cancel: Optional[Callable[[], bool]]) -> None:
        self.pending: "collections.deque[int]" = collections.deque()
        self.numbers: dict[int, Optional[int]] = {}
        self.finished: dict[int, Union[DreamResult, P.ProtocolError]] = {}
        self.progress = progress
        self.should_cancel = should_cancel
        self.cancel_sent = False

    def sent(self, request_id: int, frame: Optional[int]) -> None:
        self.pending.append(request_id)
        self.numbers[request_id] = frame

    def _ours(self, reply: dict) -> bool:
        request_id = reply.get("id")
        return request_id in self.numbers and request_id not in self.finished  # not, e.g., our own cancel's reply

    def is_event(self, reply: dict) -> bool:
        return self._ours(reply) and reply.get("event") in ("progress", "heartbeat")

    def is_final(self, reply: dict) -> bool:
        return self._ours(reply) and reply.get("event") not in ("progress", "heartbeat")

    def relay(self, reply: dict) -> bool:
        """Passes a progress or heartbeat event on; True when a cancel must be sent now."""
        if self.progress is not None:
            self.progress(dict(reply, frame=self.numbers[reply["id"]]))
        if self.should_cancel is not None and not self.cancel_sent and self.should_cancel():
            self.cancel_sent = True
            return True
        return False
