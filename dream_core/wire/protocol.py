"""The dream server's wire protocol. Standard library only: the Blender
add-on bundles this very file (``build.py`` copies the ``wire`` folder),
so server and client share one definition.

Transport: ``multiprocessing.connection`` framing over loopback TCP or a Unix
socket, with its HMAC challenge in both directions keyed by a shared token.
Only ``send_bytes``/``recv_bytes`` are used (never ``send``/``recv``, which
unpickle). A *message* is one JSON header followed by the binary payloads
the header lists::

    {"v": 4, "op": "dream", "id": 7, "payloads": [{"name": "image", "format": "png"}], ...}
    <png bytes>

Every request gets exactly one final reply (``"event": "result"`` or
``"event": "error"`` with a stable ``code``); a dream may be preceded by
``progress`` and ``heartbeat`` events, so silence means a dead server.
Replies carry their request's ``id``. A connection may keep up to
``MAX_IN_FLIGHT`` dreams in flight (a frame is decoded and sent while the
one before it dreams); they run in the order sent.

Ops: ``hello`` (server facts: version, device, models and their layers,
limits, ``compiling``: compiled engines still being built); ``dream``
(header: ``params``, ``job``, ``frame``, ``output``;
payloads by name: ``image``, optional ``display`` (the image as the view
transform shows it, display-encoded: that is dreamed, with ``image``'s
passes, and an EXR reply is carried back to ``image``'s scene light),
``vectors`` (the Vector pass, raw H×W×4), ``mask``, ``guide``, and for a sequence resumed where the server
lost its job ``previous_state`` (the exact carried state a result sent
back when its ``output`` asked for ``"state": true``), or, rebuilt
approximately, ``previous_render``, ``previous_dream``, ``previous_vectors``;
and at a chunk seam ``blend_with``, the chunk after's dream of the frame,
with the header's ``blend_share``: the reply is then the dream cross-faded
into it by that share, while the job carries the dream itself on); the
header's ``output`` says how the reply comes: ``format``, ``dtype`` (raw),
``state``, and ``dither`` (``{"intensity": 0-2, "pattern": "blender4"}``,
PNG only: the reply holds the 8-bit levels Blender writes from the dream,
dithered as it dithers renders, for Blender to write as they are);
``cancel`` (a ``job``'s frames, or without a job all of this connection's);
``close_job``; ``prepare`` (header: ``params``, ``width``, ``height``: a
frame size the client will send, so the server loads the model and builds
its compiled engines for that size before the first frame; answered at
once, the work goes on in the background; a server older than this op
answers ``unknown_op``, which a client may ignore); ``live`` (a live view's
capture, dreamed a little deeper, progressively: header ``session``,
``params``, optional ``rows`` (``top_down`` or ``bottom_up``), ``budget`` and
``output`` ``{"dtype": "uint8"|"float32"}``; one raw uint8 RGB(A) payload,
``image``; the reply is the dream as raw opaque RGBA with its ``depth``
(0-1), ``full``, ``iterations`` and ``moved``. Latest wins: an older update
of the session still queued is answered ``superseded``, and one running
stops when a capture of a changed view arrives; ``close_job`` with the
session's id ends it. A server older than this op answers ``unknown_op``).
Jobs and live sessions are private to the connection that made them: the same
id on another connection is another job; ``echo`` (the payloads back: transport
timing); ``shutdown``.
"""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import struct
import sys
import time
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge

PROTOCOL = 4  # 2: the output mix is "mix" (was "strength"); 3: a sequence's exact carried state;
# 4: the picture's text metadata travels with it, and output "dither" (a PNG of Blender's dithered 8-bit levels)
# How a server of this release makes a dream from its settings: raised by a change that dreams the same settings
# differently (1: the strength floor under a carried pattern on noisy renders). A dream's provenance names it
# (shot.provenance), so a client refuses a server of another algorithm: the records it keeps would name the wrong one.
ALGORITHM = 1
MAX_HEADER = 1 << 20  # bytes; headers are small JSON
DEFAULT_MAX_PAYLOAD = 512 << 20
HEARTBEAT_SECONDS = 1.0
HANDSHAKE_SECONDS = 10.0
MAX_IN_FLIGHT = 4  # dream requests one connection may have queued or running

OPS = ("hello", "dream", "prepare", "live", "cancel", "close_job", "echo", "shutdown")

# Stable error codes: clients branch on these, people read the message.
ERRORS = {
    "bad_header": "the header is not a JSON object of the expected form",
    "bad_version": "client and server speak different protocol versions",
    "unknown_op": "no such operation",
    "oversize": "a message is larger than the server accepts",
    "bad_image": "the image could not be decoded",
    "shape_mismatch": "sizes of the image, its passes or the declared shape disagree",
    "nonfinite": "the image holds NaN or infinite values",
    "too_small": "the image is too small to dream",
    "unknown_model": "no such model",
    "unknown_layer": "the model has no such layer",
    "bad_params": "a setting is missing, unknown or out of range",
    "bad_state": "a carried state that is not of this sequence's frames",
    "weights_unavailable": "the model's weights could not be downloaded (offline?); lite0 needs no download",
    "job_lost": "the server let the job go (idle, or over its caps): its next frame cannot carry the motion",
    "out_of_memory": "the device ran out of memory",
    "cancelled": "the job was cancelled",
    "superseded": "a newer capture of the live view came first; this one was not dreamed (or not to its end)",
    "busy": "the connection already has MAX_IN_FLIGHT frames in flight",
    "shutting_down": "the server is shutting down",
    "internal": "an unexpected server error",
}

RAW_DTYPES = {"uint8": 1, "uint16": 2, "float16": 2, "float32": 4}
IMAGE_FORMATS = ("png", "exr", "tiff", "jpeg", "webp", "raw")


class ProtocolError(Exception):
    """An error reply, or a broken exchange, with a stable ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


# --- addresses ---------------------------------------------------------------

def parse_address(text: str) -> tuple[int, object]:
    """``HOST:PORT`` (TCP) or a path (Unix socket) -> (family, address)."""
    if "/" in text or text.startswith("unix:"):
        path = text[5:] if text.startswith("unix:") else text
        return socket.AF_UNIX, path
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"address must be HOST:PORT or a socket path, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


def format_address(family: int, address: object) -> str:
    if family == getattr(socket, "AF_UNIX", None):
        return str(address)
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address: an IP literal of the loopback
    range, or ``localhost``. Other names are not resolved (a name can point
    anywhere): give an address, or allow remote listening explicitly."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- tokens ------------------------------------------------------------------

def new_token() -> str:
    return secrets.token_hex(32)


def failure_text(err: BaseException) -> str:
    """What a connection's failure says; some say nothing (a server that closed the connection)."""
    if isinstance(err, EOFError):
        return "it closed the connection"
    return str(err) or type(err).__name__


def token_refused(address: str, token_file: str = "") -> str:
    """A server's refusal of the token said as such (the handshake's own error names only a digest)."""
    return f"the dream server at {address} refused the token" + (f" in {token_file}" if token_file else "")


def default_token_file() -> str:
    """Where ``serve`` keeps its token without ``--token-file``, and where a
    client looks for it without one: the same user on the same machine."""
    return os.path.join(os.path.expanduser("~"), ".dream_renders", "token")


def read_token(path: str) -> str:
    """The token in ``path``; ValueError if the file is missing, empty, or
    readable by other users (as ssh refuses a private key others can read:
    whoever reads the token can use the server)."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise ValueError(f"token file not found: {path}")
    mode = os.stat(path).st_mode & 0o777
    if os.name == "posix" and mode & 0o077:
        raise ValueError(f"token file {path} is readable by other users (mode {mode:o}); "
                         f"make it private with: chmod 600 {path}")
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        raise ValueError(f"token file {path} is empty")
    return token


def write_token(path: str, token: str) -> None:
    """Writes ``token`` to a new file readable by its owner only (mode 0600)."""
    path = os.path.expanduser(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")


def read_or_create_token(path: str) -> str:
    """The token in ``path``; a new one written there (mode 0600) if missing."""
    if os.path.exists(os.path.expanduser(path)):
        return read_token(path)
    token = new_token()
    write_token(path, token)
    return token


# --- connections -------------------------------------------------------------

def set_read_timeout(sock: socket.socket, seconds: float) -> None:
    """An OS-level receive timeout: it still applies after the socket is
    handed to ``Connection``, which reads the raw descriptor."""
    if sys.platform == "win32":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("L", int(seconds * 1000)))
    else:
        whole = int(seconds)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def set_connection_read_timeout(conn: Connection, seconds: float) -> None:
    sock = socket.socket(fileno=conn.fileno())
    try:
        set_read_timeout(sock, seconds)
    finally:
        sock.detach()  # the descriptor stays the connection's


def authenticate(sock: socket.socket, token: str, server_side: bool,
                 read_timeout: float = HANDSHAKE_SECONDS) -> Connection:
    """Wraps a connected socket and runs the mutual HMAC challenge."""
    sock.settimeout(None)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # a message is several small writes (its header, then each payload): with Nagle's algorithm each
        # write after the first waits for the peer's delayed acknowledgement, ~40 ms a request and a reply
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    set_read_timeout(sock, read_timeout)
    conn = Connection(sock.detach())
    key = token.encode()
    if server_side:
        deliver_challenge(conn, key)
        answer_challenge(conn, key)
    else:
        answer_challenge(conn, key)
        deliver_challenge(conn, key)
    return conn


def connect(address: str, token: str, timeout: float = 10.0) -> Connection:
    family, addr = parse_address(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        _connect_within(sock, addr, timeout)
        return authenticate(sock, token, server_side=False, read_timeout=timeout)
    except BaseException:
        sock.close()
        raise


def _connect_within(sock: socket.socket, addr, timeout: float) -> None:
    """Connects, waiting up to ``timeout`` while the server's accept queue is
    full: TCP waits on its own, a Unix socket answers EAGAIN at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(addr)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the server at {addr} took no new connection within {timeout:g} s") from None
            time.sleep(0.02)


# --- messages ----------------------------------------------------------------

def send_message(conn: Connection, header: dict, payloads: list[bytes] = ()) -> None:
    header = dict(header, v=PROTOCOL)
    declared = header.get("payloads", [])
    if len(declared) != len(payloads):
        raise ValueError(f"header lists {len(declared)} payloads, {len(payloads)} given")
    conn.send_bytes(json.dumps(header, separators=(",", ":")).encode())
    for payload in payloads:
        conn.send_bytes(payload)


def recv_header(conn: Connection) -> dict:
    """Reads and checks one header. Raises ProtocolError for a bad one (the
    connection stays usable only for ``bad_version``/``unknown_op``)."""
    try:
        raw = conn.recv_bytes(MAX_HEADER)
    except OSError as err:
        if "bad message length" in str(err):
            raise ProtocolError("oversize", f"header larger than {MAX_HEADER} bytes") from None
        raise
    try:
        header = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("bad_header", "header is not valid JSON") from None
    except RecursionError:  # "[[[[..." a hundred thousand deep
        raise ProtocolError("bad_header", "header JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", "header must be a JSON object")
    payloads = header.get("payloads", [])
    if not isinstance(payloads, list) or not all(isinstance(p, dict) for p in payloads) or len(payloads) > 8:
        raise ProtocolError("bad_header", "payloads must be a list of at most 8 objects")
    return header


def recv_payloads(conn: Connection, header: dict, max_payload: int) -> list[bytes]:
    out = []
    for _ in header.get("payloads", []):
        try:
            out.append(conn.recv_bytes(max_payload))
        except OSError as err:
            if "bad message length" in str(err):
                raise ProtocolError("oversize", f"payload larger than {max_payload >> 20} MiB") from None
            raise
    return out


def check_raw(meta: dict, size: int) -> tuple[int, int, int, str]:
    """Validates a raw pixel payload's declared shape and type against its size."""
    shape, dtype = meta.get("shape"), meta.get("dtype")
    if dtype not in RAW_DTYPES:
        raise ProtocolError("bad_header", f"raw dtype must be one of {', '.join(RAW_DTYPES)}")
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ProtocolError("bad_header", "raw shape must be [height, width, channels]")
    h, w, c = shape
    if c not in (1, 2, 3, 4):
        raise ProtocolError("shape_mismatch", f"raw images have 1 to 4 channels, not {c}")
    if h * w * c * RAW_DTYPES[dtype] != size:
        raise ProtocolError("shape_mismatch", f"declared {h}x{w}x{c} {dtype} is {h * w * c * RAW_DTYPES[dtype]} "
                            f"bytes, payload has {size}")
    return h, w, c, dtype


def error_reply(request_id, code: str, message: str) -> dict:
    return {"event": "error", "id": request_id, "code": code, "message": message}


def raise_for_error(reply: dict) -> dict:
    if reply.get("event") == "error":
        raise ProtocolError(str(reply.get("code", "internal")), str(reply.get("message", "server error")))
    return reply


def ready_line(address: str, pid: int) -> str:
    """The one line a server prints on stdout when it accepts connections."""
    return json.dumps({"event": "ready", "address": address, "pid": pid, "protocol": PROTOCOL})
