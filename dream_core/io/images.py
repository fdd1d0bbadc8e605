"""Reading and writing pictures, to files (atomically) and to bytes (for the
wire). Rasters go through OpenCV, which keeps 16 bits per channel where
Pillow reduces 16-bit RGB to 8 bits; EXR goes through OpenEXR."""
from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field, replace
from typing import Iterator, Optional

import cv2
import numpy as np
import torch
from PIL import Image

from ..errors import BadImage, ImageTooLarge, ShapeMismatch
from ..shot.atomic import owned_prefix, sweep_once, write_atomically
from . import exr
from . import metadata as text_metadata
from .transfer import linear_to_srgb, srgb_to_linear

# file suffix -> format name
FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
           ".webp": "webp", ".exr": "exr"}
_MAX = {"uint8": 255.0, "uint16": 65535.0}
_LIMIT = {"pixels": 16384 * 16384}  # what decode_image accepts; a server lowers it (serve --max-megapixels)


def set_max_pixels(pixels: int) -> None:
    """The largest image, in pixels, that this process decodes."""
    _LIMIT["pixels"] = int(pixels)


def max_pixels() -> int:
    return _LIMIT["pixels"]


def check_declared_size(data: bytes, fmt: str, source: str) -> None:
    """Refuses a decompression bomb from its header, before any pixel is
    decoded: a small PNG can declare 20000x20000 and cost gigabytes. A
    header that cannot be read is a refusal too: a decoder more lenient than
    the check (libpng past a chunk with a wrong checksum) would decode what
    was never checked."""
    if fmt == "exr":
        return  # checked from the file's header by _read_exr
    if fmt == "png":  # the size is the first chunk's, read here: Pillow refuses a PNG that libpng decodes
        if data[:8] != text_metadata.PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 24:
            raise BadImage(f"{source}: not a decodable png image (no PNG header)")
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    else:
        try:
            with Image.open(io.BytesIO(data)) as header:  # reads the header only
                width, height = header.size
        except Image.DecompressionBombError as err:  # Pillow's own, larger limit
            raise ImageTooLarge(f"{source}: {err}") from None
        except Exception:
            raise BadImage(f"{source}: not a decodable {fmt} image (its header cannot be read)") from None
    _check_pixel_count(width, height, source)


def _check_pixel_count(width: int, height: int, source: str) -> None:
    if width * height > max_pixels():
        raise ImageTooLarge(f"{source} declares {width}x{height} pixels; this process decodes at most "
                            f"{max_pixels()} pixels ({max_pixels() / 1e6:g} megapixels)")


@dataclass
class Picture:
    """An image as the engine sees it: float32 pixels H×W×C (C = 1…4,
    alpha last), plus how it was stored so it can be written back alike."""

    pixels: np.ndarray
    linear: bool = False  # scene-linear (EXR) rather than display-referred sRGB
    dtype: str = "uint8"  # stored sample type: uint8, uint16, float16, float32
    vectors: Optional[np.ndarray] = None  # Blender's Vector pass, H×W×4, when present
    passes: Optional[exr.Passes] = None  # a multilayer EXR's other passes, written back beside the pixels
    metadata: dict[str, str] = field(default_factory=dict)  # the file's text (Blender's stamp), written back

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[-1] in (2, 4)

    def with_pixels(self, pixels: np.ndarray) -> "Picture":
        return replace(self, pixels=pixels, vectors=None)


def format_of(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise BadImage(f"{path}: unsupported file type {suffix or '(none)'}; "
                         f"use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


def _from_cv(array: np.ndarray, source: str) -> Picture:
    if array.dtype not in (np.uint8, np.uint16):
        raise BadImage(f"{source}: unsupported sample type {array.dtype}")
    dtype = str(array.dtype)
    if array.ndim == 2:
        array = array[..., None]
    elif array.shape[-1] == 3:
        array = array[..., ::-1]
    elif array.shape[-1] == 4:
        array = array[..., [2, 1, 0, 3]]
    return Picture(np.ascontiguousarray(array, dtype=np.float32) / _MAX[dtype], False, dtype)


def _to_cv(picture: Picture, fmt: str) -> np.ndarray:
    dtype = picture.dtype if picture.dtype in _MAX else "uint16"
    if fmt in ("jpeg", "webp"):
        dtype = "uint8"
    pixels = picture.pixels
    if picture.linear:
        pixels = _straight_alpha(pixels)  # display formats: straight alpha, sRGB
        colour = _colour(pixels)
        pixels[..., colour] = linear_to_srgb(torch.from_numpy(pixels[..., colour])).numpy()
    if fmt == "jpeg" and picture.has_alpha:
        pixels = pixels[..., :-1]
    array = np.round(np.clip(pixels, 0.0, 1.0) * _MAX[dtype]).astype(dtype)
    if array.shape[-1] == 3:
        array = array[..., ::-1]
    elif array.shape[-1] == 4:
        array = array[..., [2, 1, 0, 3]]
    elif array.shape[-1] == 1:
        array = array[..., 0]
    return np.ascontiguousarray(array)


def read_image(path: str) -> Picture:
    """Reads a picture; raises FileNotFoundError or BadImage with the path in the message."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    fmt = format_of(path)
    if fmt == "exr":
        return _read_exr(path, path)
    with open(path, "rb") as f:
        return decode_image(f.read(), fmt, source=path)


def decode_image(data: bytes, fmt: str, source: str = "image") -> Picture:
    """Decodes bytes of the given format (``png``, ``jpeg``, ``tiff``, ``webp``, ``exr``)."""
    if fmt == "exr":
        with scratch_file(data) as path:
            return _read_exr(path, source)
    check_declared_size(data, fmt, source)
    # a JPEG has no alpha to keep, and a camera's portrait shot is stored sideways with an EXIF orientation:
    # read as it is shown (IMREAD_UNCHANGED ignores the orientation), grey kept grey
    flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if fmt == "jpeg" else cv2.IMREAD_UNCHANGED
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if array is None:
        raise BadImage(f"{source}: not a decodable {fmt} image")
    picture = _from_cv(array, source)
    if fmt != "png":
        return picture
    if data[25:26] == b"\x04":  # grey and alpha, which OpenCV reads as RGBA: kept grey
        picture = replace(picture, pixels=np.ascontiguousarray(picture.pixels[..., [0, 3]]))
    return replace(picture, metadata=text_metadata.from_png(data))


@contextlib.contextmanager
def scratch_file(data: bytes = b"") -> Iterator[str]:
    """A path to a file holding ``data``, for OpenEXR (it reads and writes
    paths only). Where the system has them (Linux), anonymous memory: a
    killed process leaves nothing on disk. Elsewhere a private temporary
    file, named so the next run removes it if this one is killed."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("dream-exr")
        try:
            _write_all(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    folder = tempfile.gettempdir()
    sweep_once(folder)
    fd, path = tempfile.mkstemp(prefix=owned_prefix(), suffix=".exr", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exr(path: str, source: str) -> Picture:
    """``path`` (a temporary file for bytes received) is never named: ``source`` is."""
    try:
        sizes = exr.declared_sizes(path)
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        raise BadImage(f"{source}: not a readable EXR image ({str(err).replace(path, source)})") from None
    for width, height in sizes:  # every part is decoded: every part is checked
        _check_pixel_count(width, height, source)
    if len(set(sizes)) > 1:
        raise ShapeMismatch(f"{source}: its parts differ in size ({', '.join(f'{w}x{h}' for w, h in sizes)})")
    try:
        found = exr.read_exr(path)
    except ShapeMismatch as err:
        raise ShapeMismatch(str(err).replace(path, source)) from None
    except (OSError, RuntimeError, ValueError) as err:
        raise BadImage(f"{source}: not a readable EXR image ({str(err).replace(path, source)})") from None
    return Picture(found.pixels, True, found.dtype, found.vectors, found.passes, found.metadata)


def encode_image(picture: Picture, fmt: str) -> bytes:
    if fmt == "exr":
        with scratch_file() as path:
            dtype = picture.dtype if picture.dtype.startswith("float") else "float16"
            exr.write_exr(path, _linear_pixels(picture), dtype, picture.passes, picture.metadata)
            with open(path, "rb") as f:
                return f.read()
    ext = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "webp": ".webp"}[fmt]
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpeg" else []
    array = _to_cv(picture, fmt)
    if array.ndim == 3 and array.shape[-1] == 2:  # grey and alpha: OpenCV writes 1, 3 or 4 channels
        if fmt == "png":
            return text_metadata.into_png(_grey_alpha_png(array), picture.metadata)
        array = np.ascontiguousarray(array[..., [0, 0, 0, 1]])
    ok, buf = cv2.imencode(ext, array, params)
    if not ok:
        raise ValueError(f"could not encode a {picture.width}x{picture.height} picture as {fmt}")
    return text_metadata.into_png(buf.tobytes(), picture.metadata) if fmt == "png" else buf.tobytes()


def _grey_alpha_png(array: np.ndarray) -> bytes:
    """A grey-and-alpha PNG (colour type 4, 8 or 16 bits) of an H×W×2 array."""
    height, width = array.shape[:2]
    depth = 16 if array.dtype == np.uint16 else 8
    rows = array.astype(">u2" if depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter 0 on every row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, 4, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _linear_pixels(picture: Picture) -> np.ndarray:
    if picture.linear:
        return picture.pixels
    pixels = picture.pixels.copy()
    colour = _colour(pixels)
    pixels[..., colour] = srgb_to_linear(torch.from_numpy(pixels[..., colour])).numpy()
    if picture.has_alpha:  # EXR's colour is premultiplied by its alpha (associated), a PNG's is not
        pixels[..., colour] *= pixels[..., -1:]
    return pixels


def _colour(pixels: np.ndarray) -> slice:
    return slice(0, 3) if pixels.shape[-1] >= 3 else slice(0, 1)


def _straight_alpha(pixels: np.ndarray) -> np.ndarray:
    """A copy of scene-linear pixels with their colour divided by their alpha,
    as display formats store it (EXR stores it multiplied, as Blender renders
    it); where alpha is 0 or missing the colour stays as it is."""
    pixels = pixels.copy()
    if pixels.shape[-1] in (2, 4):
        alpha = pixels[..., -1:]
        colour = _colour(pixels)
        covered = np.broadcast_to(alpha > 0, pixels[..., colour].shape)
        pixels[..., colour] = np.where(covered, pixels[..., colour] / np.where(alpha > 0, alpha, 1.0),
                                       pixels[..., colour])
    return pixels


def write_image(path: str, picture: Picture) -> None:
    """Encodes and writes atomically (a crash never leaves a half-written frame)."""
    write_atomically(path, encode_image(picture, format_of(path)))
