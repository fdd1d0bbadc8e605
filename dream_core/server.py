"""``python -m dream_core serve``: the dream server.

One thread accepts; each connection gets a thread that authenticates it,
decodes its frames and encodes the results (so codec work overlaps the GPU),
and relays the worker's events. A slow, stalled or vanished client only ever
holds its own thread.
"""
from __future__ import annotations

import argparse
import logging
import os
import queue
import socket
import sys
import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection

from . import protocol as P
from .payloads import decode_task, encode_result, job_id, limit_decoders
from .version import __version__
from .worker import Task, Worker

log = logging.getLogger("dream_core.server")

STALL_SECONDS = 60.0  # a message started but not finished within this is a stalled client


class DreamServer:
    def __init__(self, token: str, address: str = "127.0.0.1:0", *, device: str = "auto",
                 max_payload: int = P.DEFAULT_MAX_PAYLOAD, job_idle_timeout: float = 600.0,
                 allow_remote: bool = False) -> None:
        self.token = token
        self.max_payload = max_payload
        self.family, addr = P.parse_address(address)
        if self.family != socket.AF_UNIX and not P.is_loopback(addr[0]):
            if not allow_remote:
                raise ValueError(f"{addr[0]} is not a loopback address; pass --allow-remote to listen on it")
            log.warning("listening on %s: reachable from other machines, protected by the token only", addr[0])
        self.listener = socket.socket(self.family, socket.SOCK_STREAM)
        if self.family == socket.AF_UNIX:
            if os.path.exists(addr):
                os.unlink(addr)  # a stale socket from a crashed server
            self.listener.bind(addr)
            os.chmod(addr, 0o600)
        else:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(addr)
        self.listener.listen(64)
        self.address = P.format_address(self.family, self.listener.getsockname())
        self.worker = Worker(device, job_idle_timeout)
        self.stopping = threading.Event()
        self.counter_lock = threading.Lock()
        self.connections = 0

    # --- lifecycle -----------------------------------------------------------

    def serve_forever(self) -> None:
        self.listener.settimeout(0.5)
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()
        self.listener.close()
        self.worker.stop()
        self.worker.thread.join(timeout=30)
        if self.family == socket.AF_UNIX and os.path.exists(self.address):
            os.unlink(self.address)

    def shutdown(self) -> None:
        self.stopping.set()

    # --- one connection ------------------------------------------------------

    def _connection(self, sock: socket.socket) -> None:
        try:
            conn = P.authenticate(sock, self.token, server_side=True)
        except (AuthenticationError, OSError, EOFError) as err:
            log.warning("connection refused: %s", err or type(err).__name__)
            sock.close()
            return
        P.set_connection_read_timeout(conn, STALL_SECONDS)
        with self.counter_lock:
            self.connections += 1
        try:
            self._serve(conn)
        except EOFError:
            log.debug("client closed its connection")
        except OSError as err:
            log.info("client connection dropped: %s", err)
        finally:
            with self.counter_lock:
                self.connections -= 1
            conn.close()

    def _serve(self, conn: Connection) -> None:
        while not self.stopping.is_set():
            if not conn.poll(0.5):
                continue
            try:
                header = P.recv_header(conn)
            except P.ProtocolError as err:
                P.send_message(conn, P.error_reply(None, err.code, err.message))
                return  # the stream cannot be trusted after a bad header
            request_id = header.get("id")
            if header.get("v") != P.PROTOCOL:
                P.send_message(conn, P.error_reply(request_id, "bad_version",
                                                   f"server speaks protocol {P.PROTOCOL}, request says "
                                                   f"{header.get('v')!r}"))
                return
            op = header.get("op")
            try:
                payloads = P.recv_payloads(conn, header, self.max_payload)
                if op not in P.OPS:
                    raise P.ProtocolError("unknown_op", f"unknown op {op!r}; valid: {', '.join(P.OPS)}")
                getattr(self, f"_op_{op}")(conn, header, payloads)
            except P.ProtocolError as err:
                P.send_message(conn, P.error_reply(request_id, err.code, err.message))
                if err.code == "oversize":
                    return

    def _op_hello(self, conn, header, payloads) -> None:
        reply = {"event": "result", "id": header.get("id"), "op": "hello", "protocol": P.PROTOCOL,
                 "version": __version__, "max_payload": self.max_payload, **self.worker.info()}
        P.send_message(conn, reply)

    def _op_cancel(self, conn, header, payloads) -> None:
        job = job_id(header)
        count = self.worker.cancel_job(job) if job else 0
        P.send_message(conn, {"event": "result", "id": header.get("id"), "op": "cancel", "cancelled": count})

    def _op_close_job(self, conn, header, payloads) -> None:
        job = job_id(header)
        if not job:
            raise P.ProtocolError("bad_header", "close_job needs a job id")
        closed = self.worker.close_job(job)
        P.send_message(conn, {"event": "result", "id": header.get("id"), "op": "close_job", "closed": closed})

    def _op_echo(self, conn, header, payloads) -> None:
        """Sends the payloads back: measures what the transport alone costs."""
        P.send_message(conn, {"event": "result", "id": header.get("id"), "op": "echo",
                              "payloads": header.get("payloads", [])}, payloads)

    def _op_shutdown(self, conn, header, payloads) -> None:
        P.send_message(conn, {"event": "result", "id": header.get("id"), "op": "shutdown"})
        log.info("shutdown requested by a client")
        self.shutdown()

    def _op_dream(self, conn, header, payloads) -> None:
        task = decode_task(header, payloads)
        self.worker.submit(task)
        try:
            self._relay(conn, header, task)
        except BaseException:
            task.cancel.set()  # nobody is left to receive this frame
            raise

    def _relay(self, conn: Connection, header: dict, task: Task) -> None:
        request_id = header.get("id")
        while True:
            try:
                event = task.events.get(timeout=P.HEARTBEAT_SECONDS)
            except queue.Empty:
                position = self.worker.queue_position(task)
                P.send_message(conn, {"event": "heartbeat", "id": request_id,
                                      "state": "queued" if position else "running", "position": position})
                self._read_cancel(conn, task)
                continue
            kind = event[0]
            if kind == "progress":
                p = event[1]
                P.send_message(conn, {"event": "progress", "id": request_id, "octave": p.octave,
                                      "octaves": p.octaves, "iteration": p.iteration, "iterations": p.iterations})
                self._read_cancel(conn, task)
            elif kind == "error":
                raise P.ProtocolError(event[1], event[2])
            else:
                meta, data = encode_result(event[1], header.get("output") or {}, task.reply_format)
                P.send_message(conn, {"event": "result", "id": request_id, "op": "dream", "job": task.job,
                                      "frame": task.frame, "width": event[1].width, "height": event[1].height,
                                      "payloads": [meta]}, [data])
                return

    def _read_cancel(self, conn: Connection, task: Task) -> None:
        """While a frame runs, the only request a connection may send is a cancel."""
        if not conn.poll(0):
            return
        header = P.recv_header(conn)
        P.recv_payloads(conn, header, self.max_payload)
        if header.get("op") == "cancel":
            task.cancel.set()
            P.send_message(conn, {"event": "result", "id": header.get("id"), "op": "cancel", "cancelled": 1})
        else:
            task.cancel.set()
            raise P.ProtocolError("bad_header", "only cancel may be sent while a frame is running")

# --- command line ---------------------------------------------------------------

def _token(args: argparse.Namespace) -> str:
    if args.token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise ValueError("--token-stdin: standard input gave no token")
        return token
    path = args.token_file or os.path.join(os.path.expanduser("~"), ".dream_renders", "token")
    token = P.read_or_create_token(path)
    log.info("token file: %s", path)
    return token


def serve_from_args(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="dream-server %(levelname)s %(message)s")
    limit_decoders()
    address = args.socket or args.listen or "127.0.0.1:0"
    server = DreamServer(_token(args), address, device=args.device, max_payload=args.max_payload_mb << 20,
                         job_idle_timeout=args.job_idle_timeout, allow_remote=args.allow_remote)
    if args.preload:
        server.worker.dreamer(args.preload, "default")  # first frame should not pay for loading
    print(P.ready_line(server.address, os.getpid()), flush=True)
    log.info("listening on %s (device %s)", server.address, server.worker.dreamer_device())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    log.info("stopped")
    return 0
