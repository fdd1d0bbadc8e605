"""The image pyramid: DeepDream works from the smallest octave up, carrying
the dreamed detail (dream minus input) to the next size, so patterns grow at
several scales."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ImageTooSmall

MIN_SIDE = 32  # smaller inputs collapse to nothing at the mid layers of every backbone


def octave_shapes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """Sizes from the smallest octave to the full image; octaves that would
    shrink below ``MIN_SIDE`` are dropped."""
    if min(height, width) < MIN_SIDE:
        raise ImageTooSmall(f"image is {width}x{height}; dreaming needs at least {MIN_SIDE} px on each side")
    shapes = []
    for i in range(octaves):
        factor = scale**i
        h, w = round(height / factor), round(width / factor)
        if min(h, w) < MIN_SIDE:
            break
        shapes.append((h, w))
    return shapes[::-1]


def resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a [B, C, H, W] tensor (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    shrinking = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrinking)
