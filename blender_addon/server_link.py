"""How the add-on reaches a dream server: start one itself with a configured
Python, or connect to one already running. Plain Python, no bpy: it is used
from the worker thread too. Environment variables override preferences so
scripted and headless runs need no UI."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from multiprocessing import AuthenticationError

from .wire.client import DreamClient
from .wire.protocol import (
    ProtocolError,
    default_token_file,
    failure_text,
    parse_address,
    read_token,
    token_refused,
)
from .wire.spawn import ServerProcess, ServerStartError, spawn_server


@dataclass(frozen=True)
class ServerConfig:
    mode: str  # "SPAWN" or "CONNECT"
    python: str = ""
    address: str = ""
    token_file: str = ""
    device: str = "auto"

    @classmethod
    def resolve(cls, prefs=None, installed_python: str = "") -> "ServerConfig":
        """Preferences, overridden by DREAM_SERVER_PYTHON / _ADDRESS / _TOKEN_FILE;
        with no Python set, the one Install Dream Server made (if any); with
        no token file, the one ``serve`` keeps by default (if any)."""
        mode = getattr(prefs, "server_mode", "SPAWN")
        python = getattr(prefs, "python_path", "") or installed_python
        address = getattr(prefs, "address", "")
        token_file = getattr(prefs, "token_file", "")
        device = getattr(prefs, "device", "auto")
        env = os.environ
        if env.get("DREAM_SERVER_PYTHON"):
            mode, python = "SPAWN", env["DREAM_SERVER_PYTHON"]
        if env.get("DREAM_SERVER_ADDRESS"):
            mode, address = "CONNECT", env["DREAM_SERVER_ADDRESS"]
        token_file = env.get("DREAM_SERVER_TOKEN_FILE", token_file)
        if mode == "CONNECT" and not token_file and os.path.isfile(default_token_file()):
            token_file = default_token_file()  # where serve keeps it without --token-file, as the CLI looks too
        return cls(mode, python, address, token_file, device.lower())

    def problem(self) -> str:
        """Why this configuration cannot work, or ''."""
        if self.mode == "SPAWN":
            if not self.python:
                return ("no dream server installed: press Install Dream Server in the add-on preferences, or set "
                        "the Python where dream_core is installed (or DREAM_SERVER_PYTHON)")
            if not os.path.isfile(os.path.expanduser(self.python)):
                return f"the dream server's Python was not found: {self.python}"
        else:
            if not self.address:
                return "set the dream server's address in the add-on preferences (or DREAM_SERVER_ADDRESS)"
            try:
                parse_address(self.address)
            except ValueError:
                return (f"the dream server's address {self.address!r} is neither HOST:PORT nor a socket path "
                        "(the address the server printed as it started)")
            if not self.token_file:
                return ("set the server's token file in the add-on preferences (or DREAM_SERVER_TOKEN_FILE): the "
                        "file the server was started with, by default ~/.dream_renders/token")
            if not os.path.isfile(os.path.expanduser(self.token_file)):
                return f"the server's token file was not found: {self.token_file}"
        return ""


class ConnectionFailed(Exception):
    """The server could not be reached or started; the message says why."""


class ServerLink:
    """Owns the server process the add-on started (if any) and hands out
    connections. Thread-safe: the worker thread reconnects through it."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.process: ServerProcess | None = None
        self.lock = threading.Lock()

    def _endpoint(self) -> tuple[str, str]:
        cfg = self.config
        if cfg.mode == "CONNECT":
            try:
                return cfg.address, read_token(cfg.token_file)
            except ValueError as err:
                raise ConnectionFailed(str(err)) from None
        with self.lock:
            if self.process is None or not self.process.alive():
                if self.process is not None:
                    print(f"Dream Renders: the dream server stopped; restarting it. Its log ended:\n"
                          f"{self.process.log_tail(8)}")
                    self.process.stop()  # reaps it and removes its log
                try:
                    # below Blender's priority: where they share the CPU, the window and the render come first
                    self.process = spawn_server(os.path.expanduser(cfg.python), device=cfg.device, yield_cpu=True)
                except ServerStartError as err:
                    raise ConnectionFailed(str(err)) from None
            return self.process.address, self.process.token

    def answers(self) -> None:
        """Connect mode: :class:`ConnectionFailed` at once when the server
        does not answer (a run sure to dream says so before it renders); a
        server the add-on starts itself is started when first needed."""
        if self.config.mode == "CONNECT":
            self.connect(timeout=5.0).close()

    def connect(self, timeout: float = 60.0) -> DreamClient:
        """A connected client; a server the add-on started is restarted once
        if it turns out to have died."""
        problem = self.config.problem()
        if problem:
            raise ConnectionFailed(problem)
        for attempt in (1, 2):
            address, token = self._endpoint()
            try:
                client = DreamClient(address, token, timeout=timeout)
                client.hello()
                return client
            except AuthenticationError:
                whose = self.config.token_file if self.config.mode == "CONNECT" else ""
                raise ConnectionFailed(f"{token_refused(address, whose)}: set the token file the server was started "
                                       "with (its --token-file)") from None
            except (OSError, EOFError, ProtocolError) as err:
                dead = self.process is not None and self._exited(self.process)
                if dead and attempt == 1:
                    continue  # _endpoint starts a new one
                detail = f"; the server exited, its log ends:\n{self.process.log_tail(8)}" if dead else ""
                raise ConnectionFailed(f"cannot talk to the dream server at {address}: {failure_text(err)}{detail}") \
                    from None
        raise AssertionError("unreachable")

    @staticmethod
    def _exited(process: ServerProcess, grace: float = 3.0) -> bool:
        """Whether the process is gone, allowing a dying one a moment to finish."""
        try:
            process.process.wait(grace)
            return True
        except Exception:
            return False

    def stop(self) -> None:
        with self.lock:
            if self.process is not None:
                self.process.stop()
                self.process = None


class ConnectionProbe:
    """Reaches the server on a thread of its own (starting one can take a
    minute), so Test Connection never freezes the UI: the operator polls
    ``done`` from a timer. ``info`` is the server's hello, or ``error`` why not."""

    def __init__(self, link: ServerLink) -> None:
        self.link = link
        self.info: dict | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._probe, name="dream-renders-probe", daemon=True)
        self.thread.start()

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def _probe(self) -> None:
        try:
            with self.link.connect() as client:
                self.info = client.server_info
        except ConnectionFailed as err:
            self.error = str(err)
        except Exception as err:  # reported, never a silent dead thread
            self.error = f"{type(err).__name__}: {err}"


_LINK: ServerLink | None = None


def get_link(config: ServerConfig) -> ServerLink:
    """The add-on's one link, replaced when the configuration changes."""
    global _LINK
    if _LINK is None or _LINK.config != config:
        if _LINK is not None:
            _LINK.stop()
        _LINK = ServerLink(config)
    return _LINK


def shutdown_link() -> None:
    global _LINK
    if _LINK is not None:
        _LINK.stop()
        _LINK = None
