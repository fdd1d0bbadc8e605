"""A picture's text metadata: what its maker wrote beside the pixels, such as
Blender's stamp (File, Date, Time, Frame, Camera, Scene, RenderTime,
``cycles.*`` and whatever else the user enabled under Metadata). A dream of
a frame keeps its frame's metadata, as Blender keeps it in the files it
writes, and adds nothing of ours.

PNG holds it in text chunks, EXR in string attributes of its header. What
an EXR header also says about the file itself (its parts, channels,
compression, the writing program) is not the picture's metadata: it is
left out, so a file written from a dream gets the writer's own."""
from __future__ import annotations

import struct
import zlib

# EXR string attributes that describe the file rather than the picture (the
# writer adds its own); Cryptomatte's names travel with its passes
EXR_FILE_ATTRIBUTES = frozenset({"name", "view", "type", "multiView", "BlenderMultiChannel", "Software",
                                 "colorInteropID"})
EXR_PASS_PREFIXES = ("cryptomatte/",)
MAX_ENTRIES = 256
MAX_TOTAL = 256 * 1024  # characters: a header or chunk list beyond this holds no more metadata we carry
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def from_exr_header(header: dict) -> dict[str, str]:
    """The picture's metadata among an EXR header's attributes: its string
    attributes, less those that describe the file."""
    found = {key: value for key, value in header.items()
             if isinstance(value, str) and key not in EXR_FILE_ATTRIBUTES and not key.startswith(EXR_PASS_PREFIXES)}
    return _bounded(found)


def from_png(data: bytes) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of PNG bytes, in file order; a
    malformed or compressed-too-far chunk is skipped, not trusted."""
    found: dict[str, str] = {}
    if not data.startswith(PNG_SIGNATURE):
        return found
    at, budget = len(PNG_SIGNATURE), MAX_TOTAL
    while at + 8 <= len(data) and len(found) < MAX_ENTRIES and budget > 0:
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"IEND" or len(body) < length:
            break
        entry = _text_chunk(kind, body, budget)
        if entry is not None:
            found[entry[0]] = entry[1]
            budget -= len(entry[0]) + len(entry[1])
    return found


def into_png(data: bytes, metadata: dict[str, str]) -> bytes:
    """PNG bytes with ``metadata`` as text chunks after the header chunk:
    ``tEXt`` where Latin-1 holds it, else ``iTXt`` (UTF-8)."""
    if not metadata or not data.startswith(PNG_SIGNATURE):
        return data
    header_end = len(PNG_SIGNATURE) + 12 + struct.unpack(">I", data[8:12])[0]
    chunks = b"".join(_png_chunk(key, value) for key, value in metadata.items() if 0 < len(key) < 80)
    return data[:header_end] + chunks + data[header_end:]


def _text_chunk(kind: bytes, body: bytes, budget: int):
    try:
        if kind == b"tEXt":
            key, value = body.split(b"\0", 1)
            return key.decode("latin-1"), value.decode("latin-1")
        if kind == b"zTXt":
            key, rest = body.split(b"\0", 1)
            return key.decode("latin-1"), _inflate(rest[1:], budget).decode("latin-1")
        if kind == b"iTXt":
            key, rest = body.split(b"\0", 1)
            compressed, rest = rest[0], rest[2:]
            _language, _translated, text = rest.split(b"\0", 2)
            return key.decode("latin-1"), (_inflate(text, budget) if compressed else text).decode("utf-8")
    except (ValueError, IndexError, UnicodeDecodeError, zlib.error):
        return None
    return None


def _inflate(data: bytes, budget: int) -> bytes:
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, max(1, budget))
    if inflater.unconsumed_tail:
        raise ValueError("compressed text beyond what is carried")
    return text


def _png_chunk(key: str, value: str) -> bytes:
    try:
        name = key.encode("latin-1")  # PNG keywords are Latin-1
    except UnicodeEncodeError:
        return b""
    try:
        kind, body = b"tEXt", name + b"\0" + value.encode("latin-1")
    except UnicodeEncodeError:
        kind, body = b"iTXt", name + b"\0\0\0\0\0" + value.encode("utf-8")
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _bounded(found: dict[str, str]) -> dict[str, str]:
    kept, budget = {}, MAX_TOTAL
    for key, value in list(found.items())[:MAX_ENTRIES]:
        budget -= len(key) + len(value)
        if budget < 0:
            break
        kept[key] = value
    return kept
