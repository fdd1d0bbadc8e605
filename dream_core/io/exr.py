"""EXR through the official ``OpenEXR`` bindings.

Blender writes multilayer EXR in two shapes: 3.x one part whose channels are
named ``ViewLayer.Combined.R`` …, 5.0 one part per pass. Both are read by
gathering every part's channels under their full names.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import OpenEXR

COMBINED = "Combined"


def _full_channels(path: str) -> dict[str, np.ndarray]:
    channels: dict[str, np.ndarray] = {}
    with OpenEXR.File(path, separate_channels=True) as f:
        for part in f.parts:
            prefix = part.name() if len(f.parts) > 1 else ""
            for name, channel in part.channels.items():
                full = name if (not prefix or name.startswith(prefix)) else f"{prefix}.{name}"
                channels[full] = channel.pixels
    return channels


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


def read_exr(path: str) -> tuple[np.ndarray, str, Optional[np.ndarray]]:
    """Returns (pixels H×W×C float32, the stored pixel type, Vector pass H×W×4 or None)."""
    channels = _full_channels(path)
    if not channels:
        raise ValueError(f"{path}: EXR file holds no channels")
    plain = [channels.get(c) for c in ("R", "G", "B", "A")]
    if plain[0] is not None and plain[1] is not None and plain[2] is not None:
        found = plain
    elif (combined := _find_pass(channels, COMBINED, "RGBA")) is not None:
        found = combined
    elif (combined := _find_pass(channels, COMBINED, "RGB")) is not None:
        found = combined
    elif "Y" in channels:
        found = [channels["Y"], channels.get("A")]
    else:
        raise ValueError(f"{path}: no RGB or Combined pass among channels {', '.join(sorted(channels)[:8])}")
    found = [c for c in found if c is not None]
    dtype = "float16" if all(c.dtype == np.float16 for c in found) else "float32"
    pixels = np.stack([c.astype(np.float32) for c in found], axis=-1)
    vector = _find_pass(channels, "Vector", "XYZW")
    vectors = np.stack([c.astype(np.float32) for c in vector], axis=-1) if vector else None
    return pixels, dtype, vectors


def write_exr(path: str, pixels: np.ndarray, dtype: str) -> None:
    """Writes H×W×C pixels as a plain R, G, B(, A) or Y(, A) EXR, ZIP-compressed."""
    names = {1: "Y", 2: "YA", 3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
    np_type = np.float16 if dtype == "float16" else np.float32
    channels = {n: np.ascontiguousarray(pixels[..., i].astype(np_type)) for i, n in enumerate(names)}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, channels) as f:
        f.write(path)
