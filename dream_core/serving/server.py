"""``python -m dream_core serve``: the dream server.

One thread accepts; each connection gets a thread that authenticates it,
reads its requests and decodes their frames, and each frame in flight a
thread that relays the worker's events and encodes the result, so codec and
transfer work overlaps the frame on the device. A slow, stalled or vanished
client only ever holds its own threads.
"""
from __future__ import annotations

import errno
import functools
import itertools
import logging
import queue
import socket
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection
from typing import Optional

from ..engine.compiling import CompileCache
from ..engine.device import resolve_device, staged_pixels
from ..errors import DreamError
from ..version import __version__
from ..wire import protocol as P
from .admission import Admission, Limits
from .codec import decode_prepare, decode_task, encode_result, job_id
from .listening import Listening
from .live_sessions import LiveResult, LiveTask, decode_live, live_reply
from .tasks import ErrorEvent, FrameTask, ProgressEvent, ResultEvent
from .worker import Capacity, Worker

log = logging.getLogger("dream_core.server")

STALL_SECONDS = 60.0  # a message started but not finished within this is a stalled client


class DreamServer:
    def __init__(self, token: str, address: str = "127.0.0.1:0", *, device: str = "auto",
                 max_payload: int = P.DEFAULT_MAX_PAYLOAD, job_idle_timeout: float = 600.0,
                 allow_remote: bool = False, heartbeat: float = P.HEARTBEAT_SECONDS,
                 weights_dir: Optional[str] = None, limits: Limits = Limits(),
                 capacity: Capacity = Capacity(), compile_cache: Optional[CompileCache] = None,
                 listening: Optional[Listening] = None) -> None:
        """``listening``: the socket already opened at ``address`` (``serve``
        opens it before torch loads); the server closes it when it stops."""
        self.token = token
        self.stage = functools.partial(staged_pixels, device=resolve_device(device))  # an unknown device: no socket
        self.admission = Admission(limits)
        self.weights_dir = weights_dir
        self.heartbeat = heartbeat
        self.max_payload = max_payload
        self.listening = listening or Listening(address, allow_remote)
        self.listener = self.listening.socket
        self.address = self.listening.address
        self.worker = Worker(device, job_idle_timeout, capacity, compile_cache)
        self.stopping = threading.Event()
        self.closed = False

    # --- lifecycle -----------------------------------------------------------

    def serve_forever(self) -> None:
        """Serves until :meth:`shutdown`; however it ends (Ctrl+C included)
        the device thread stops and a Unix socket path is given up."""
        try:
            self._accept_until_stopped()
        finally:
            self.close()

    def close(self) -> None:
        """Stops listening and the device thread, and gives a Unix socket path up (once)."""
        if self.closed:
            return
        self.closed = True
        self.stopping.set()
        try:
            self.listener.close()
            self.worker.stop()
            self.worker.thread.join(timeout=30)
        finally:  # a second Ctrl+C during the join still gives the path up
            self.listening.close()  # a Unix socket path is given up once nothing of this server runs

    def _accept_until_stopped(self) -> None:
        self.listener.settimeout(0.5)
        while not self.stopping.is_set():
            self.admission.reap()
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError as err:
                if self.stopping.is_set():
                    break
                if err.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                log.warning("cannot accept a connection: %s", err.strerror)
                if not self.admission.make_room():
                    self.stopping.wait(0.1)  # nothing to drop: let sessions end before trying again
                continue
            self.admission.arrived(sock)
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def shutdown(self) -> None:
        self.stopping.set()
        try:  # Linux wakes a waiting accept() at once; elsewhere it notices within its half-second timeout
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- one connection ------------------------------------------------------

    def _connection(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        try:
            conn = P.authenticate(sock, self.token, server_side=True,
                                  read_timeout=self.admission.limits.handshake_seconds)
        except (AuthenticationError, OSError, EOFError) as err:
            self.admission.handshake_over(fd)
            log.warning("connection refused: %s", err or type(err).__name__)
            sock.close()
            return
        self.admission.handshake_over(fd)
        session = Session(conn)
        if not self.admission.open_session():
            self._send_quietly(session, P.error_reply(None, "busy", "the server has as many connections as it "
                                                      "takes; try again when one closes"))
            session.close()
            return
        P.set_connection_read_timeout(conn, STALL_SECONDS)
        try:
            self._serve(session)
        except EOFError:
            log.debug("client closed its connection")
        except OSError as err:
            log.info("client connection dropped: %s", err)
        finally:
            self.admission.close_session()
            session.close()

    def _serve(self, session: "Session") -> None:
        conn = session.conn
        heard = time.monotonic()
        try:
            while not self.stopping.is_set():
                if not conn.poll(0.5):
                    if session.in_flight() == 0 and time.monotonic() - heard > self.admission.limits.idle_seconds:
                        log.info("closing a connection silent for %.0f s", self.admission.limits.idle_seconds)
                        return
                    continue
                heard = time.monotonic()
                if not self._handle(session):
                    return
        finally:
            session.cancel_all()  # nobody is left to receive these frames
            self.worker.close_owner(session.owner)

    def _handle(self, session: "Session") -> bool:
        """Reads and answers one request; False when the stream cannot go on."""
        try:
            header = P.recv_header(session.conn)
        except P.ProtocolError as err:
            session.send(P.error_reply(None, err.code, err.message))
            return False  # the stream cannot be trusted after a bad header
        request_id = header.get("id")
        if header.get("v") != P.PROTOCOL:
            session.send(P.error_reply(request_id, "bad_version", f"server speaks protocol {P.PROTOCOL}, "
                                       f"request says {header.get('v')!r}"))
            return False
        op = header.get("op")
        try:
            payloads = P.recv_payloads(session.conn, header, self.max_payload)
        except P.ProtocolError as err:
            session.send(P.error_reply(request_id, err.code, err.message))
            return err.code != "oversize"  # a payload left unread: the stream cannot be trusted
        try:
            if op not in P.OPS:
                raise P.ProtocolError("unknown_op", f"unknown op {op!r}; valid: {', '.join(P.OPS)}")
            getattr(self, f"_op_{op}")(session, header, payloads)
        except P.ProtocolError as err:  # the whole message was read: the connection goes on
            session.send(P.error_reply(request_id, err.code, err.message))
        return True

    def _op_hello(self, session, header, payloads) -> None:
        session.send({"event": "result", "id": header.get("id"), "op": "hello", "protocol": P.PROTOCOL,
                      "algorithm": P.ALGORITHM, "version": __version__, "max_payload": self.max_payload,
                      "max_in_flight": P.MAX_IN_FLIGHT, "heartbeat": self.heartbeat, **self.worker.info()})

    def _op_prepare(self, session, header, payloads) -> None:
        self.worker.prepare(decode_prepare(header, self.weights_dir))
        session.send({"event": "result", "id": header.get("id"), "op": "prepare", "queued": True})

    def _op_cancel(self, session, header, payloads) -> None:
        """With a job: that job's frames; without: all of this connection's. Jobs
        are private to their connection: another's frames are never touched."""
        job = job_id(header)
        count = self.worker.cancel_job(session.owner, job) if job else session.cancel_all()
        session.send({"event": "result", "id": header.get("id"), "op": "cancel", "cancelled": count})

    def _op_close_job(self, session, header, payloads) -> None:
        job = job_id(header)
        if not job:
            raise P.ProtocolError("bad_header", "close_job needs a job id")
        closed = self.worker.close_job(session.owner, job)
        session.send({"event": "result", "id": header.get("id"), "op": "close_job", "closed": closed})

    def _op_echo(self, session, header, payloads) -> None:
        """Sends the payloads back: measures what the transport alone costs."""
        session.send({"event": "result", "id": header.get("id"), "op": "echo",
                      "payloads": header.get("payloads", [])}, payloads)

    def _op_shutdown(self, session, header, payloads) -> None:
        session.send({"event": "result", "id": header.get("id"), "op": "shutdown"})
        log.info("shutdown requested by a client")
        self.shutdown()

    def _op_dream(self, session, header, payloads) -> None:
        self._check_room(session)
        task = decode_task(header, payloads, self.weights_dir, self.stage)  # here: it overlaps the frame dreaming
        self._start(session, header, task)

    def _op_live(self, session, header, payloads) -> None:
        """A live view's capture, dreamed a little deeper (serving/live_sessions.py: latest wins)."""
        task = decode_live(header, payloads, self.weights_dir)
        # this view's captures still in flight are answered by this one (superseded, or stopped for it) however
        # fast they come, so they take no room from it: their answers may not have been sent yet
        self._check_room(session, besides=lambda other: isinstance(other, LiveTask) and other.session == task.session)
        self._start(session, header, task)

    @staticmethod
    def _check_room(session: "Session", besides=None) -> None:
        """Refuses a request past MAX_IN_FLIGHT; ``besides``: tasks that do not count."""
        if session.in_flight(besides) >= P.MAX_IN_FLIGHT:
            raise P.ProtocolError("busy", f"this connection already has {P.MAX_IN_FLIGHT} frames in flight; "
                                  "wait for a result before sending more")

    def _start(self, session: "Session", header: dict, task: "FrameTask | LiveTask") -> None:
        task.owner = session.owner
        session.add(task)
        self.worker.submit(task)
        threading.Thread(target=self._relay, args=(session, header, task), daemon=True).start()

    def _relay(self, session: "Session", header: dict, task: "FrameTask | LiveTask") -> None:
        """Sends one frame's events, then its result (encoded here, off the worker)."""
        request_id = header.get("id")
        try:
            self._heartbeat(session, request_id, task)  # at once: the client learns its place in the queue
            while True:
                try:
                    event = task.events.get(timeout=self.heartbeat)
                except queue.Empty:
                    self._heartbeat(session, request_id, task)
                    continue
                if isinstance(event, ProgressEvent):
                    p = event.progress
                    session.send({"event": "progress", "id": request_id, "octave": p.octave, "octaves": p.octaves,
                                  "iteration": p.iteration, "iterations": p.iterations})
                    continue
                if isinstance(event, ErrorEvent):
                    session.send(P.error_reply(request_id, event.code, event.message))
                elif isinstance(event, LiveResult):
                    session.send(*live_reply(header, task, event))
                else:
                    self._send_result(session, header, task, event)
                return
        except (OSError, EOFError) as err:
            log.info("could not send to the client, it is gone: %s", err)
            task.cancel.set()
        except Exception as err:  # every request gets its one final reply, whatever broke here
            log.exception("relaying a frame failed")
            task.cancel.set()
            self._send_quietly(session, P.error_reply(request_id, "internal", f"{type(err).__name__}: {err}"))
        finally:
            session.remove(task)

    def _heartbeat(self, session: "Session", request_id, task: "FrameTask | LiveTask") -> None:
        position = self.worker.queue_position(task)
        session.send({"event": "heartbeat", "id": request_id, "state": "queued" if position else "running",
                      "position": position})

    @staticmethod
    def _send_quietly(session: "Session", header: dict) -> None:
        try:
            session.send(header)
        except (OSError, EOFError):
            pass

    def _send_result(self, session: "Session", header: dict, task: FrameTask, result: ResultEvent) -> None:
        """The dream, and after it the sequence's carried state when the request asked for it."""
        request_id, picture = header.get("id"), result.picture
        try:
            displayed = (task.render, task.picture) if task.render is not None else None
            meta, data = encode_result(picture, header.get("output") or {}, task.reply_format, displayed)
            state = None if result.state is None else result.state.encode()
        except P.ProtocolError as err:
            session.send(P.error_reply(request_id, err.code, err.message))
            return
        except DreamError as err:
            session.send(P.error_reply(request_id, err.code, str(err)))
            return
        reply = {"event": "result", "id": request_id, "op": "dream", "job": task.job, "frame": task.frame,
                 "width": picture.width, "height": picture.height, "payloads": [meta]}
        payloads = [data]
        if state is not None and len(state) > self.max_payload:
            reply["state_omitted"] = f"the carried state ({len(state) >> 20} MiB) exceeds --max-payload-mb"
        elif state is not None:
            reply["payloads"].append({"name": "state", "format": "dream-state"})
            payloads.append(state)
        session.send(reply, payloads)


class Session:
    """One client connection: its sends (from the reader and relay threads,
    one message at a time) and its frames in flight."""

    _owners = itertools.count(1)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.owner = next(self._owners)  # tells this connection's jobs from another's
        self.send_lock = threading.Lock()
        self.closed = False
        self.tasks_lock = threading.Lock()
        self.tasks: list[FrameTask] = []

    def send(self, header: dict, payloads: list[bytes] = ()) -> None:
        with self.send_lock:
            if self.closed:  # a relay outliving its connection must not write to a reused descriptor
                raise OSError("the connection is closed")
            P.send_message(self.conn, header, payloads)

    def close(self) -> None:
        """Closes under the send lock: no send is half-way when the descriptor
        is freed (the next accepted connection may get its number)."""
        with self.send_lock:
            self.closed = True
            self.conn.close()

    def add(self, task: FrameTask) -> None:
        with self.tasks_lock:
            self.tasks.append(task)

    def remove(self, task: FrameTask) -> None:
        with self.tasks_lock:
            if task in self.tasks:
                self.tasks.remove(task)

    def in_flight(self, besides=None) -> int:
        """Frames queued or running, but those ``besides(task)`` is true of."""
        with self.tasks_lock:
            return sum(1 for task in self.tasks if besides is None or not besides(task))

    def cancel_all(self) -> int:
        with self.tasks_lock:
            tasks = list(self.tasks)
        for task in tasks:
            task.cancel.set()
        return len(tasks)
