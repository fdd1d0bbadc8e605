"""Colour conversions around the dream: CNNs were trained on sRGB photos,
renders are often scene-linear with highlights above 1.0.

The per-frame conversions work on torch tensors laid out [N, C, H, W] so a
frame is converted on the device that dreams it (a 1080p frame's NumPy
conversions cost more CPU time than its whole dream on an H100). The
element-wise ones take any layout. ``grey`` prepares masks read from files
and takes NumPy arrays H×W×C.
"""
from __future__ import annotations

import numpy as np
import torch

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601, as YCbCr uses


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.pow(1 / 2.4) - 0.055)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).pow(2.4))


def compress_highlights(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Splits linear RGB [N, 3, H, W] into a part within [0, 1] and a
    per-pixel ratio (>= 1) such that ``part * ratio == rgb``: the dream
    works on the part, the ratio puts highlights back so an HDR round trip
    stays faithful."""
    rgb = rgb.clamp(min=0.0)
    ratio = rgb.amax(dim=1, keepdim=True).clamp(min=1.0)
    return rgb / ratio, ratio


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 1, H, W]."""
    r, g, b = rgb.unbind(dim=1)
    return (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b).unsqueeze(1)


def keep_source_colours(dreamed: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Dreamed luminance with the source's chroma (YCbCr split): stops the
    drift towards dark, over-saturated colours that plain DeepDream shows."""
    return (luma(dreamed) + source - luma(source)).clamp(0.0, 1.0)


def grey(pixels: np.ndarray) -> np.ndarray:
    """H×W×C pixels as one channel in [0, 1] (e.g. a mask image)."""
    value = pixels[..., :3].mean(axis=-1) if pixels.shape[-1] >= 3 else pixels[..., 0]
    return np.clip(value, 0.0, 1.0)
