"""Is an OpenEXR file whole? Standard library only (Blender's Python may have
no OpenEXR, and Blender loads a multilayer EXR without showing its pixels).

OpenEXR writes a table of chunk offsets after the headers and fills it in
when the file is closed; a render cut short (a full disk, a crash) has
offsets missing or pointing past the end, or its last chunk cut off."""
from __future__ import annotations

import hashlib
import os
import struct
from typing import Optional

MAGIC = 20000630
MULTIPART, TILED, DEEP = 0x1000, 0x200, 0x800
LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}  # by compression


HEAD_BYTES = 1 << 20  # headers and chunk tables of any render we make fit well inside (1080 lines: ~9 KB)


def is_complete_exr(path: str) -> bool:
    """Reads the headers, the chunk tables and the last chunk's header only:
    the whole file is read once, when it is sent."""
    try:
        with open(path, "rb") as f:
            return _complete(f.read(HEAD_BYTES), os.fstat(f.fileno()).st_size, f)
    except (OSError, ValueError, struct.error, IndexError):
        return False


def pixel_digest(path: str) -> Optional[str]:
    """A digest of an EXR's pixels (each part's channels, window and
    compression, and every chunk as stored), not of its metadata: Blender
    stamps each render with its date and render time, so two renders of the
    same scene differ in bytes but not here. None when the file is not a
    whole scanline EXR of ours."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            size = os.fstat(f.fileno()).st_size
            headers, pos, version = _headers(head)
            for header in headers:
                for name in ("channels", "dataWindow", "compression", "type"):
                    sha.update(repr(header.get(name)).encode())
                count = _chunk_count(header, version)
                offsets = struct.unpack_from(f"<{count}Q", head, pos)
                pos += 8 * count
                for offset in offsets:
                    end = _chunk_end(f, offset, version, header)
                    if end <= offset or end > size:
                        return None
                    f.seek(offset)
                    sha.update(f.read(end - offset))
    except (OSError, ValueError, struct.error, IndexError, KeyError):
        return None
    return sha.hexdigest()[:32]


def has_channel(path: str, fragment: str) -> bool:
    """Whether any channel name in the file contains ``fragment`` (from the headers alone)."""
    try:
        with open(path, "rb") as f:
            headers, _, _ = _headers(f.read(HEAD_BYTES))
    except (OSError, ValueError, struct.error, IndexError):
        return False
    return any(fragment in name for header in headers for name in _channel_names(header))


def _channel_names(header: dict) -> list[str]:
    """The names in a ``chlist`` attribute: each name, NUL, 16 bytes of layout; a NUL ends the list."""
    data, pos, names = header.get("channels", (b"", b""))[1], 0, []
    while pos < len(data) and data[pos] != 0:
        end = data.index(b"\0", pos)
        names.append(data[pos:end].decode("latin-1"))
        pos = end + 1 + 16
    return names


def _headers(head: bytes) -> tuple[list[dict], int, int]:
    """The headers, where the chunk tables start, and the version field."""
    magic, version = struct.unpack_from("<ii", head, 0)
    if magic != MAGIC:
        raise ValueError("not an OpenEXR file")
    pos, headers = 8, []
    while True:
        header, pos = _header(head, pos)
        headers.append(header)
        if not version & MULTIPART or head[pos] == 0:
            break
    if version & MULTIPART:
        pos += 1  # the empty header that ends the list
    return headers, pos, version


def _complete(head: bytes, size: int, f) -> bool:
    headers, pos, version = _headers(head)
    last_end = 0
    for header in headers:
        count = _chunk_count(header, version)
        offsets = struct.unpack_from(f"<{count}Q", head, pos)
        pos += 8 * count
        if not offsets or min(offsets) == 0 or max(offsets) >= size:
            return False
        last_end = max(last_end, _chunk_end(f, max(offsets), version, header))
    return last_end <= size


def _header(data: bytes, pos: int) -> tuple[dict, int]:
    header = {}
    while data[pos] != 0:
        name_end = data.index(b"\0", pos)
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        start = type_end + 5
        header[data[pos:name_end].decode("latin-1")] = (data[name_end + 1:type_end], data[start:start + size])
        pos = start + size
    return header, pos + 1


def _chunk_count(header: dict, version: int) -> int:
    if "chunkCount" in header:
        return struct.unpack("<i", header["chunkCount"][1])[0]
    if version & (TILED | DEEP):
        raise ValueError("single-part tiled or deep files carry no chunk count: not ours")
    _, y_min, _, y_max = struct.unpack("<4i", header["dataWindow"][1][:16])
    lines = LINES_PER_CHUNK[header["compression"][1][0]]
    return -(-(y_max - y_min + 1) // lines)


def _chunk_end(f, offset: int, version: int, header: dict) -> int:
    """Where the chunk at ``offset`` ends (scanline chunks: [part,] y, size, data)."""
    kind = header.get("type", (b"", b"scanlineimage"))[1].rstrip(b"\0")
    if version & (TILED | DEEP) or kind != b"scanlineimage":
        return offset  # its table entry is in the file; its size layout differs: trust it
    at = offset + (4 if version & MULTIPART else 0) + 4
    f.seek(at)
    (size,) = struct.unpack("<i", f.read(4))
    return at + 4 + size
