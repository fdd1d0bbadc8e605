"""Requests that cost far more to serve than to send, and a server made
deaf: built by the soak benchmark (soak.py) and by the tests that check each
is refused. Nothing here is run on its own."""
from __future__ import annotations

import os
import signal
import socket
import struct
import zlib


def png_declaring(width: int, height: int, broken_text: bool = False) -> bytes:
    """A tiny PNG whose header declares ``width``x``height``; ``broken_text``:
    a text chunk with a wrong CRC before the pixels (Pillow cannot read the
    header, libpng decodes the pixels anyway)."""
    def chunk(kind: bytes, body: bytes, crc_offset: int = 0) -> bytes:
        crc = (zlib.crc32(kind + body) + crc_offset) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    text = chunk(b"tEXt", b"Comment\0hello", crc_offset=1) if broken_text else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + text
            + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1))) + chunk(b"IEND", b""))


def exr_with_parts(sizes: list[tuple[int, int]]) -> bytes:
    """A multi-part EXR of zeros, one part per size (the first RGB, the others depth)."""
    import tempfile

    import numpy as np
    import OpenEXR

    big = (max(w for w, _ in sizes) - 1, max(h for _, h in sizes) - 1)
    parts = [OpenEXR.Part({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
                           "displayWindow": (np.array([0, 0], np.int32), np.array(big, np.int32)),
                           "dataWindow": (np.array([0, 0], np.int32), np.array([w - 1, h - 1], np.int32))},
                          {"R": np.zeros((h, w), np.float16)} if i == 0 else {"Z": np.zeros((h, w), np.float16)},
                          f"part{i}") for i, (w, h) in enumerate(sizes)]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "parts.exr")
        with OpenEXR.File(parts) as f:
            f.write(path)
        with open(path, "rb") as f:
            return f.read()


def stop_and_fill(pid: int, path: str) -> list[socket.socket]:
    """Stops (SIGSTOP) the server at Unix socket ``path`` and fills its
    accept queue, so connecting fails at once: a live server that answers
    nobody. The caller sends SIGCONT and closes the sockets returned."""
    os.kill(pid, signal.SIGSTOP)
    fillers = []
    while True:
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler.setblocking(False)
        try:
            filler.connect(path)
        except (BlockingIOError, ConnectionRefusedError):
            filler.close()
            return fillers
        fillers.append(filler)
