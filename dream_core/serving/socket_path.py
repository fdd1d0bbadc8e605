"""A Unix socket path that one server owns while it runs.

Whether a socket file is stale cannot be told by connecting to it: a live
server whose accept queue is full, or which is stopped (SIGSTOP), does not
answer either. So a server first takes an exclusive lock on ``PATH.lock``;
holding it, any socket at ``PATH`` was left by a server that is gone (the
kernel drops a dead process's locks). On the way out the server unlinks the
path only if it is still the socket it bound (same inode): an orphaned
server must never delete a newer server's socket.
"""
from __future__ import annotations

import os
import socket
import stat
from typing import Optional

try:
    import fcntl
except ImportError:  # Windows: no flock; the connect probe below is all there is
    fcntl = None


class SocketInUse(ValueError):
    """Another server holds the path."""


class SocketClaim:
    """The lock on a socket path and, once bound, the socket's identity."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock_path = path + ".lock"
        self.lock_fd: Optional[int] = None
        self.identity: Optional[tuple[int, int]] = None  # (device, inode) of the socket this server bound
        self._lock()
        self._clear_stale_socket()

    def _lock(self) -> None:
        if fcntl is None:
            return
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SocketInUse(f"a server is already listening on {self.path}; stop it or choose another "
                                  "--socket path") from None
            # the holder before us may have unlinked the lock file between our open and our lock:
            # then we hold a lock nobody else can see, and must take the one at the path
            try:
                same = _identity(os.stat(self.lock_path)) == _identity(os.fstat(fd))
            except FileNotFoundError:
                same = False
            if same:
                self.lock_fd = fd
                return
            os.close(fd)

    def _clear_stale_socket(self) -> None:
        """Removes a socket a crashed server left; refuses anything else there."""
        if not os.path.lexists(self.path):
            return
        if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
            self.release()
            raise ValueError(f"{self.path} exists and is not a socket; choose another --socket path")
        if self.lock_fd is None and _answers(self.path):
            raise SocketInUse(f"a server is already listening on {self.path}; stop it or choose another "
                              "--socket path")
        os.unlink(self.path)  # we hold the lock: whoever bound it is gone

    def bound(self) -> None:
        """Remembers the socket just bound at the path as this server's."""
        self.identity = _identity(os.lstat(self.path))

    def release(self) -> None:
        """Unlinks the socket if it is still ours, then gives the lock up."""
        try:
            if self.identity is not None and _identity(os.lstat(self.path)) == self.identity:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.identity = None
        if self.lock_fd is not None:
            try:
                os.unlink(self.lock_path)  # while still holding it: see _lock for the race this leaves safe
            except FileNotFoundError:
                pass
            os.close(self.lock_fd)
            self.lock_fd = None


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2.0)
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
