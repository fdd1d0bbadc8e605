"""Who gets in, and for how long: the server's defence against connections
that never authenticate (a flood, or one byte every few seconds) and
against running out of file descriptors.

Connections waiting for the handshake are few and short-lived: past
``max_pending`` the oldest waiting one is dropped to make room (a real
client's handshake takes milliseconds, so it gets through a flood), and
every handshake has one deadline for the whole exchange. Authenticated
sessions are capped too, and one that stays silent with nothing in flight
past ``idle_seconds`` is closed.
"""
from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from dataclasses import dataclass, replace

log = logging.getLogger("dream_core.server")


@dataclass(frozen=True)
class Limits:
    max_pending: int = 32  # connections still in the handshake
    max_sessions: int = 64  # authenticated connections
    handshake_seconds: float = 10.0  # for the whole handshake, however slowly it trickles in
    idle_seconds: float = 600.0  # an authenticated connection silent this long, with no frame in flight, is closed


def within_descriptors(limits: Limits) -> Limits:
    """Caps that leave most of the process's file descriptors to the work
    itself (model files, images, the GPU driver): connections may hold at
    most a quarter each for handshakes and sessions."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):  # no such limit here (Windows)
        return limits
    if soft == resource.RLIM_INFINITY:
        return limits
    room = max(4, soft // 4)
    fitted = replace(limits, max_pending=min(limits.max_pending, room), max_sessions=min(limits.max_sessions, room))
    if fitted != limits:
        log.warning("open-file limit %d: at most %d connections in the handshake and %d sessions",
                    soft, fitted.max_pending, fitted.max_sessions)
    return fitted


class Admission:
    """Tracks connections in the handshake (by file descriptor) and sessions."""

    def __init__(self, limits: Limits) -> None:
        self.limits = within_descriptors(limits)
        self.lock = threading.Lock()
        self.pending: "collections.OrderedDict[int, float]" = collections.OrderedDict()  # fd -> when it came
        self.sessions = 0

    def arrived(self, sock: socket.socket) -> None:
        """A new connection; the oldest waiting one goes if there are too many."""
        with self.lock:
            while len(self.pending) >= self.limits.max_pending:
                self._drop(next(iter(self.pending)), "too many connections in the handshake")
            self.pending[sock.fileno()] = time.monotonic()

    def handshake_over(self, fd: int) -> None:
        """Called before the handshake's socket is closed or kept: no drop may touch it after."""
        with self.lock:
            self.pending.pop(fd, None)

    def open_session(self) -> bool:
        with self.lock:
            if self.sessions >= self.limits.max_sessions:
                return False
            self.sessions += 1
            return True

    def close_session(self) -> None:
        with self.lock:
            self.sessions -= 1

    def reap(self) -> None:
        """Drops handshakes past their deadline (called from the accept loop)."""
        deadline = time.monotonic() - self.limits.handshake_seconds
        with self.lock:
            for fd in [fd for fd, came in self.pending.items() if came < deadline]:
                self._drop(fd, f"no handshake within {self.limits.handshake_seconds:g} s")

    def make_room(self) -> bool:
        """Out of file descriptors: drops the oldest waiting handshake, if any."""
        with self.lock:
            if not self.pending:
                return False
            self._drop(next(iter(self.pending)), "out of file descriptors")
            return True

    def _drop(self, fd: int, why: str) -> None:
        """Shuts the socket down; its handshake thread then fails and closes it."""
        self.pending.pop(fd, None)
        log.warning("dropping a connection: %s", why)
        borrowed = socket.socket(fileno=fd)
        try:
            borrowed.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            borrowed.detach()  # the descriptor stays its thread's to close
