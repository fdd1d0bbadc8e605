"""EXR through the official ``OpenEXR`` bindings.

Blender writes multilayer EXR in two shapes: 3.x one part whose channels are
named ``ViewLayer.Combined.R`` …, 5.0 one part per pass. Both are read by
gathering every part's channels under their full names. A dreamed
multilayer frame is written back with its other passes (depth, normals,
vectors…) untouched beside the dreamed Combined, as one part with full
channel names, which every Blender version reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np
import OpenEXR

from ..errors import ShapeMismatch
from . import metadata as text_metadata

COMBINED = "Combined"


# header attributes that describe passes (Cryptomatte's names and hashes): kept with them
KEPT_METADATA = ("cryptomatte/",)


def _full_channels(path: str) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """Every part's channels under their full names, the passes' metadata,
    and the picture's own (Blender's stamp: the first part's, as every part
    repeats it)."""
    channels: dict[str, np.ndarray] = {}
    metadata: dict[str, str] = {}
    with OpenEXR.File(path, separate_channels=True) as f:
        for part in f.parts:
            prefix = part.name() if len(f.parts) > 1 else ""
            for name, channel in part.channels.items():
                full = name if (not prefix or name.startswith(prefix)) else f"{prefix}.{name}"
                channels[full] = channel.pixels
            metadata.update({k: str(v) for k, v in part.header.items() if k.startswith(KEPT_METADATA)})
        stamp = text_metadata.from_exr_header(f.parts[0].header) if f.parts else {}
    return channels, metadata, stamp


def _find_pass(channels: dict[str, np.ndarray], pass_name: str, letters: str) -> Optional[list[np.ndarray]]:
    """The channels ``<layer>.<pass>.<letter>`` of the first view layer that has them."""
    for name in sorted(channels):
        parts = name.split(".")
        if len(parts) >= 2 and parts[-2] == pass_name and parts[-1] == letters[0]:
            stem = name[: -len(letters[0])]
            found = [channels.get(stem + letter) for letter in letters]
            if all(c is not None for c in found[:3]) or pass_name == "Vector":
                return found if all(c is not None for c in found) else None
    return None


@dataclass
class Passes:
    """How a multilayer file stores its picture: the full names of the
    channels the pixels came from, and every other channel as stored."""

    names: list[str]
    others: dict[str, np.ndarray]
    metadata: dict[str, str] = field(default_factory=dict)  # e.g. the Cryptomatte manifest


def declared_sizes(path: str) -> list[tuple[int, int]]:
    """Each part's (width, height) from the headers alone, before any pixel is read."""
    sizes = []
    with OpenEXR.File(path, header_only=True) as f:
        for part in f.parts:
            low, high = part.header["dataWindow"]
            sizes.append((int(high[0] - low[0] + 1), int(high[1] - low[1] + 1)))
    return sizes


class ExrImage(NamedTuple):
    pixels: np.ndarray  # H×W×C float32
    dtype: str  # the stored pixel type
    vectors: Optional[np.ndarray]  # the Vector pass, H×W×4
    passes: Optional[Passes]  # the other passes; None for a plain RGB(A)/Y(A) file
    metadata: dict[str, str]  # the picture's own (Blender's stamp)


def read_exr(path: str) -> ExrImage:
    channels, metadata, stamp = _full_channels(path)
    if not channels:
        raise ValueError(f"{path}: EXR file holds no channels")
    shapes = {c.shape for c in channels.values()}
    if len(shapes) > 1:  # subsampled channels: no picture of one size
        raise ShapeMismatch(f"{path}: its channels differ in size ({', '.join(sorted(map(str, shapes)))})")
    found = _picture_channels(channels, path)
    dtype = "float16" if all(c.dtype == np.float16 for c in found) else "float32"
    pixels = np.stack([c.astype(np.float32) for c in found], axis=-1)
    vector = _find_pass(channels, "Vector", "XYZW")
    vectors = np.stack([c.astype(np.float32) for c in vector], axis=-1) if vector else None
    used = [next(name for name, c in channels.items() if c is f) for f in found]  # in the pixels' order
    others = {name: c for name, c in channels.items() if name not in used}
    passes = Passes(used, others, metadata) if others or any("." in name for name in used) else None
    return ExrImage(pixels, dtype, vectors, passes, stamp)


def _picture_channels(channels: dict[str, np.ndarray], path: str) -> list[np.ndarray]:
    """The channels that make the picture: plain R, G, B(, A), else the first
    view layer's Combined pass, else Y(, A)."""
    plain = [channels.get(c) for c in ("R", "G", "B", "A")]
    if all(c is not None for c in plain[:3]):
        found = plain
    elif (combined := _find_pass(channels, COMBINED, "RGBA")) is not None:
        found = combined
    elif (combined := _find_pass(channels, COMBINED, "RGB")) is not None:
        found = combined
    elif "Y" in channels:
        found = [channels["Y"], channels.get("A")]
    else:
        raise ValueError(f"{path}: no RGB or Combined pass among channels {', '.join(sorted(channels)[:8])}")
    return [c for c in found if c is not None]


def write_exr(path: str, pixels: np.ndarray, dtype: str, passes: Optional[Passes] = None,
              metadata: Optional[dict[str, str]] = None) -> None:
    """Writes H×W×C pixels as a plain R, G, B(, A) or Y(, A) EXR, ZIP-compressed,
    or under ``passes.names`` beside ``passes.others`` (a multilayer frame),
    with the picture's ``metadata`` as string attributes."""
    layered = passes is not None and len(passes.names) == pixels.shape[-1]
    names = passes.names if layered else list({1: "Y", 2: "YA", 3: "RGB", 4: "RGBA"}[pixels.shape[-1]])
    np_type = np.float16 if dtype == "float16" else np.float32
    channels = {n: np.ascontiguousarray(pixels[..., i].astype(np_type)) for i, n in enumerate(names)}
    if layered:
        channels.update(passes.others)
    header = {**(metadata or {}), "compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if layered:
        header.update(passes.metadata)
    with OpenEXR.File(header, channels) as f:
        f.write(path)
