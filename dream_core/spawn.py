"""Starting a dream server process of our own and stopping it. Standard
library only: the add-on bundles it (as ``dream_spawn``) to start a server
from the configured Python.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from typing import Optional

try:  # inside dream_core
    from . import protocol as P
    from .client import DreamClient
except ImportError:  # bundled into the add-on, where build.py names them dream_*
    from . import dream_protocol as P  # type: ignore
    from .dream_client import DreamClient  # type: ignore


class ServerStartError(RuntimeError):
    """The server could not start; the message carries the end of its log."""


class ServerProcess:
    """A dream server started by :func:`spawn_server`."""

    def __init__(self, process: subprocess.Popen, address: str, token: str, log_path: str) -> None:
        self.process = process
        self.address = address
        self.token = token
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def connect(self, **kwargs) -> DreamClient:
        return DreamClient(self.address, self.token, **kwargs)

    def stop(self, timeout: float = 10.0) -> None:
        """Asks the server to shut down; terminates it if it does not."""
        if self.alive():
            try:
                with self.connect(timeout=timeout) as client:
                    client.shutdown()
            except (OSError, EOFError, P.ProtocolError):
                pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()


def spawn_server(python: str, *, device: str = "auto", listen: Optional[str] = None,
                 extra_args: Optional[list[str]] = None, env: Optional[dict] = None, cwd: Optional[str] = None,
                 ready_timeout: float = 180.0, log_path: Optional[str] = None) -> ServerProcess:
    """Starts ``python -m dream_core serve`` and waits for its ready line.

    The token goes through the child's standard input, never its command
    line (which other users can read); the pipe then stays open and the
    server stops when it closes, so it cannot outlive this process, even a
    killed one. If the server dies or stays silent, ServerStartError
    carries the end of its log."""
    token = P.new_token()
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix="dream-server-", suffix=".log")
        os.close(fd)
    cmd = [python, "-m", "dream_core", "serve", "--token-stdin", "--exit-with-stdin", "--device", device]
    if listen:
        cmd += ["--listen", listen]
    cmd += extra_args or []
    log_file = open(log_path, "ab")
    try:
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                                   env=env, cwd=cwd)
    except OSError as err:
        raise ServerStartError(f"cannot start the dream server with {python!r}: {err}") from None
    finally:
        log_file.close()
    process.stdin.write((token + "\n").encode())
    process.stdin.flush()  # and kept open: the server stops when it closes, i.e. when this process ends
    lines: "queue.Queue[Optional[bytes]]" = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    server = ServerProcess(process, "", token, log_path)
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            server.stop(timeout=2)
            raise ServerStartError(f"the dream server did not get ready within {ready_timeout:.0f} s; "
                                   f"its log ({log_path}) ends:\n{server.log_tail()}") from None
        if line is None:
            process.wait()
            raise ServerStartError(f"the dream server exited with status {process.returncode} before it was "
                                   f"ready; its log ({log_path}) ends:\n{server.log_tail()}")
        try:
            ready = json.loads(line)
        except ValueError:
            continue  # stray output of an import
        if isinstance(ready, dict) and ready.get("event") == "ready":
            if ready.get("protocol") != P.PROTOCOL:
                server.stop(timeout=2)
                raise ServerStartError(f"the server speaks protocol {ready.get('protocol')}, this client "
                                       f"{P.PROTOCOL}")
            server.address = ready["address"]
            return server
