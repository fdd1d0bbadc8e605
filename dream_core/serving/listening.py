"""The dream server's listening socket, opened before anything heavy
loads: an address the server cannot have (a port in use, a path that is
not a socket or that a live server holds, a remote address without
``--allow-remote``) is refused in a fraction of a second, not after
PyTorch has loaded. No torch here."""
from __future__ import annotations

import logging
import os
import socket
from typing import Optional

from ..wire import protocol as P
from .socket_path import SocketClaim

log = logging.getLogger("dream_core.server")


class Listening:
    """A bound, listening socket; on a Unix socket path, the claim on that
    path (see socket_path), given up by :meth:`close`."""

    def __init__(self, address: str, allow_remote: bool = False) -> None:
        family, addr = P.parse_address(address)
        if family != socket.AF_UNIX and not P.is_loopback(addr[0]):
            if not allow_remote:
                raise ValueError(f"{addr[0]} is not a loopback address; pass --allow-remote to listen on it")
            log.warning("listening on %s: reachable from other machines, protected by the token only", addr[0])
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.claim: Optional[SocketClaim] = None
        try:
            if family == socket.AF_UNIX:
                folder = os.path.dirname(addr) or "."
                if not os.path.isdir(folder):
                    raise ValueError(f"cannot listen on {addr}: the folder {folder} does not exist")
                self.claim = SocketClaim(addr)
                self.socket.bind(addr)
                self.claim.bound()
                os.chmod(addr, 0o600)
            else:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._bind_tcp(address, addr)
            self.socket.listen(128)
        except BaseException:
            self.close()
            raise
        self.address = P.format_address(family, self.socket.getsockname())

    def _bind_tcp(self, address: str, addr) -> None:
        try:
            self.socket.bind(addr)
        except OSError as err:  # in use, not this machine's, not allowed: said with the address asked for
            raise ValueError(f"cannot listen on {address}: {err.strerror or err}") from None

    def close(self) -> None:
        """Stops listening and gives a Unix socket path up (its claim released)."""
        self.socket.close()
        if self.claim is not None:
            self.claim.release()
            self.claim = None
