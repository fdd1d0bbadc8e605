"""The sRGB transfer functions and a picture's grey: the bottom layer's
colour, used by image I/O (display formats hold sRGB) and by the frame
pipeline above it. Element-wise on torch tensors of any layout (the
pipeline runs them on the device that dreams); ``grey`` takes NumPy
pixels H×W×C, as masks are read from files."""
from __future__ import annotations

import numpy as np
import torch


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.pow(1 / 2.4) - 0.055)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).pow(2.4))


def grey(pixels: np.ndarray) -> np.ndarray:
    """H×W×C pixels as one channel in [0, 1] (e.g. a mask image)."""
    value = pixels[..., :3].mean(axis=-1) if pixels.shape[-1] >= 3 else pixels[..., 0]
    return np.clip(value, 0.0, 1.0)
