"""Blender's dither: the noise Blender adds to a display image before it
rounds it to 8 bits (*Render > Post Processing > Dither*), which keeps
smooth gradients free of bands. Blender dithers the renders it writes, but
not an image it saves from a file, so a dream meant for an 8-bit file is
rounded here, with Blender's noise, and Blender writes its levels as they
are.

Two patterns, by the Blender that writes the file:

- ``blender4`` (Blender 4 and later): triangular noise in [-1, 1) from an
  integer hash of the pixel's position, counted from the bottom-left: the
  same noise as Blender's own at every pixel, so a frame of the render
  itself comes out as Blender writes it.
- ``blender3`` (Blender 3): uniform noise in [0, 1), Blender 3's
  distribution (it brightens by half a step of the noise on average). Its
  pattern, a sine hash of coordinates that depend on how Blender split the
  image among its threads, is not reproduced: pixels differ from Blender's
  own by the noise, not on average.
"""
from __future__ import annotations

import numpy as np

PATTERNS = ("blender4", "blender3")
AMPLITUDE = np.float32(0.0033)  # Blender's scale: at intensity 1 the noise spans about 0.84 of a level each way
_MULTIPLIER = np.uint32(1103515245)


def blender_noise(height: int, width: int, pattern: str) -> np.ndarray:
    """The noise Blender adds at intensity 1, H×W float32, top row first."""
    if pattern not in PATTERNS:
        raise ValueError(f"dither pattern must be one of {', '.join(PATTERNS)}")
    y = np.arange(height - 1, -1, -1, dtype=np.uint32)[:, None]  # Blender counts rows from the bottom
    x = np.arange(width, dtype=np.uint32)[None, :]
    with np.errstate(over="ignore"):
        qx = _MULTIPLIER * ((x >> np.uint32(1)) ^ y)
        qy = _MULTIPLIER * ((y >> np.uint32(1)) ^ x)
        hashed = _MULTIPLIER * (qx ^ (qy >> np.uint32(3)))
    uniform = hashed.astype(np.float32) * np.float32(1.0 / 0xFFFFFFFF)
    if pattern == "blender3":
        return np.minimum(uniform, np.float32(np.nextafter(1, 0, dtype=np.float32)))
    centred = uniform * np.float32(2) - np.float32(1)
    return (np.sign(centred) * (np.float32(1) - np.sqrt(np.float32(1) - np.abs(centred)))).astype(np.float32)


def to_8bit_levels(pixels: np.ndarray, intensity: float, pattern: str) -> np.ndarray:
    """H×W×C display values (0-1) as Blender rounds them to 8 bits, each a
    level k/255: colour with the dither's noise, alpha without."""
    noise = blender_noise(pixels.shape[0], pixels.shape[1], pattern) * (AMPLITUDE * np.float32(intensity))
    colour = 3 if pixels.shape[-1] >= 3 else 1
    values = pixels.astype(np.float32, copy=True)
    values[..., :colour] += noise[..., None]
    return _rounded(values) / np.float32(255)


def _rounded(values: np.ndarray) -> np.ndarray:
    """Blender's float to byte: 0 at or below 0, 255 above 1 - half a
    level, else 255 v + 0.5 truncated."""
    levels = np.floor(values * np.float32(255) + np.float32(0.5))
    return np.where(values <= 0, 0, np.where(values > np.float32(1 - 0.5 / 255), 255, levels)).astype(np.float32)
