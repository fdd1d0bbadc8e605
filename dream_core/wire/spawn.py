"""Starting a dream server process of our own and stopping it. Standard
library only: the add-on bundles it to start a server from the configured
Python.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Optional

from . import protocol as P
from .client import DreamClient


class ServerStartError(RuntimeError):
    """The server could not start; the message carries the end of its log."""


class ServerProcess:
    """A dream server started by :func:`spawn_server`."""

    def __init__(self, process: subprocess.Popen, address: str, token: str, log_path: Optional[str],
                 log_file=None) -> None:
        self.process = process
        self.address = address
        self.token = token
        self.log_path = log_path  # a log the caller named; None: ``log_file``, a file with no name
        self.log_file = log_file

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            if self.log_file is not None:
                self.log_file.seek(0)
                text = self.log_file.read().decode("utf-8", errors="replace")
            else:
                with open(self.log_path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
        except (OSError, ValueError):  # ValueError: closed
            return ""
        return "".join(text.splitlines(keepends=True)[-lines:])

    def _log_named(self) -> str:
        return f"its log ({self.log_path})" if self.log_path else "its log"

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
        for stream in (self.process.stdin, self.process.stdout):  # the log stays readable: what the server said
            if stream:
                stream.close()


YIELD_NICENESS = 10  # a yielding server's CPU priority below this process's (Unix nice)


def spawn_server(python: str, *, device: str = "auto", listen: Optional[str] = None,
                 extra_args: Optional[list[str]] = None, env: Optional[dict] = None, cwd: Optional[str] = None,
                 ready_timeout: float = 180.0, log_path: Optional[str] = None,
                 yield_cpu: bool = False) -> ServerProcess:
    """Starts ``python -m dream_core serve`` and waits for its ready line.

    The token goes through the child's standard input, never its command
    line (which other users can read); the pipe then stays open and the
    server stops when it closes, so it cannot outlive this process, even a
    killed one. If the server dies or stays silent, ServerStartError
    carries the end of its log. ``yield_cpu``: the server runs at a lower
    CPU priority than this process (and every thread it starts with it),
    so that where they share the CPU this process comes first."""
    token = P.new_token()
    # without a named log: a file with no name (gone with the last process holding it, however Blender ends),
    # read through the handle kept here for what a failure says
    log_file = tempfile.TemporaryFile(prefix="dream-server-") if log_path is None else None
    cmd = [python, "-m", "dream_core", "serve", "--token-stdin", "--exit-with-stdin", "--device", device]
    if listen:
        cmd += ["--listen", listen]
    process = _start(cmd + (extra_args or []), token, log_path, log_file, env, cwd, yield_cpu)
    server = ServerProcess(process, "", token, log_path, log_file)
    server.address = _ready_address(server, ready_timeout)
    return server


def _start(cmd: list[str], token: str, log_path: Optional[str], log_file, env: Optional[dict],
           cwd: Optional[str], yield_cpu: bool = False) -> subprocess.Popen:
    """The server process, its log going to ``log_path`` or ``log_file``, the token on its stdin."""
    stderr = open(log_path, "ab") if log_path else log_file
    launch, flags = _below_this_process(cmd) if yield_cpu else (cmd, 0)
    try:
        process = subprocess.Popen(launch, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                   env=env, cwd=cwd, creationflags=flags)
    except OSError as err:
        if log_file is not None:
            log_file.close()
        raise ServerStartError(f"cannot start the dream server with {cmd[0]!r}: {err}") from None
    finally:
        if log_path:
            stderr.close()
    process.stdin.write((token + "\n").encode())
    process.stdin.flush()  # and kept open: the server stops when it closes, i.e. when this process ends
    return process


def _below_this_process(cmd: list[str]) -> tuple[list[str], int]:
    """``cmd`` to start at a lower CPU priority, and Popen's creation flags:
    through ``nice`` on Unix (set before the program starts, so every thread
    it makes has it), the below-normal class on Windows."""
    if os.name == "nt":
        return cmd, getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0)
    nice = shutil.which("nice")
    if nice is None or shutil.which(cmd[0]) is None:  # a Python that is not there: Popen's own error says so
        return cmd, 0
    return [nice, "-n", str(YIELD_NICENESS), *cmd], 0


def _ready_address(server: ServerProcess, timeout: float) -> str:
    """Reads the server's stdout until its ready line; its address."""
    lines: "queue.Queue[Optional[bytes]]" = queue.Queue()

    def pump() -> None:
        for line in server.process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            tail = server.log_tail()
            server.stop(timeout=2)
            raise ServerStartError(f"the dream server did not get ready within {timeout:.0f} s; "
                                   f"{server._log_named()} ends:\n{tail}") from None
        if line is None:
            server.process.wait()
            tail = server.log_tail()
            if server.log_file is not None:
                server.log_file.close()
            raise ServerStartError(f"the dream server exited with status {server.process.returncode} before it "
                                   f"was ready; {server._log_named()} ends:\n{tail}")
        ready = _ready(line)
        if ready is not None:
            if ready.get("protocol") != P.PROTOCOL:
                server.stop(timeout=2)
                raise ServerStartError(f"the server speaks protocol {ready.get('protocol')}, this client "
                                       f"{P.PROTOCOL}")
            return ready["address"]


def _ready(line: bytes) -> Optional[dict]:
    """The ready event, if ``line`` is one (an import may print stray output)."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and event.get("event") == "ready" else None
