"""Colour conversions around the dream: CNNs were trained on sRGB photos,
renders are often scene-linear with highlights above 1.0.

The per-frame conversions work on torch tensors laid out [N, C, H, W] so a
frame is converted on the device that dreams it (a 1080p frame's NumPy
conversions cost more CPU time than its whole dream on an H100). The
element-wise ones take any layout. The transfer functions live with image
I/O (io/transfer.py), the layer below, which needs them too.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ShapeMismatch
from ..io import Picture
from ..io.transfer import linear_to_srgb, srgb_to_linear

__all__ = ["LUMA_WEIGHTS", "as_shown", "carried_back_to", "carry_back", "compress_highlights", "keep_source_colours",
           "linear_to_srgb", "luma", "srgb_to_linear"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601, as YCbCr uses


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


def _light(display: np.ndarray) -> np.ndarray:
    """Display-encoded RGB (H×W×C) as light."""
    return srgb_to_linear(torch.from_numpy(np.ascontiguousarray(display[..., :3], np.float32))).numpy()


def carry_back(linear: np.ndarray, shown: np.ndarray, dreamed: np.ndarray, bins: int = 256) -> np.ndarray:
    """A dream of the displayed image (``shown``: the render through the view
    transform, display-encoded) carried back to the scene-linear render
    ``linear`` (H×W×C, C >= 3). The view transforms (AgX, Filmic) have no
    inverse at hand here, so each channel's is read off the frame itself:
    its pixels pair scene light with displayed light, and the median scene
    light of each displayed level (a monotone curve) maps the dream's change
    in displayed light back to a change in scene light, added to the render.
    Where the dream changed nothing the render comes back exactly; alpha and
    channels past RGB are the render's (docs/BENCHMARKS.md measures it)."""
    before, after = _light(shown), _light(dreamed)
    out = linear.astype(np.float32).copy()
    for channel in range(3):
        scene, displayed = linear[..., channel].ravel(), before[..., channel].ravel()
        levels, light = _inverse_curve(displayed, scene, bins)
        change = np.interp(after[..., channel], levels, light) - np.interp(before[..., channel], levels, light)
        out[..., channel] = np.maximum(linear[..., channel] + change, 0.0)
    return out


def _inverse_curve(displayed: np.ndarray, scene: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(displayed levels, scene light) of a monotone curve through the
    frame's pixel pairs, from 0 to 1 in displayed light (past the frame's
    own levels, continued by a straight line)."""
    order = np.argsort(displayed, kind="stable")
    groups = np.array_split(order, min(bins, max(1, displayed.size)))
    levels = np.array([displayed[g].mean() for g in groups if g.size], np.float64)
    light = np.maximum.accumulate(np.array([np.median(scene[g]) for g in groups if g.size], np.float64))
    levels, index = np.unique(levels, return_index=True)
    light = light[index]
    if levels.size == 1:  # one level: no curve to read, scene light as displayed
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    low_slope = light[0] / levels[0] if levels[0] > 0 else (light[1] - light[0]) / (levels[1] - levels[0])
    high_slope = (light[-1] - light[-2]) / max(levels[-1] - levels[-2], 1e-6)
    ends_low = ([0.0], [light[0] - low_slope * levels[0]]) if levels[0] > 0 else ([], [])
    ends_high = ([1.0], [light[-1] + high_slope * (1.0 - levels[-1])]) if levels[-1] < 1 else ([], [])
    return (np.concatenate([ends_low[0], levels, ends_high[0]]),
            np.concatenate([ends_low[1], light, ends_high[1]]))


def as_shown(render: Picture, shown: Picture) -> Picture:
    """The picture to dream when the dream acts on the render as the view
    transform shows it (``shown``, display-encoded): its pixels, with the
    render's passes (the Vector pass carries the chain) and metadata."""
    if (shown.height, shown.width) != (render.height, render.width):
        raise ShapeMismatch(f"the image as shown is {shown.width}x{shown.height}, the render "
                            f"{render.width}x{render.height}")
    return Picture(shown.pixels, False, shown.dtype, render.vectors, render.passes, render.metadata)


def carried_back_to(render: Picture, shown: Picture, dreamed: Picture) -> Picture:
    """The render with the dream of its shown image carried back to scene
    light (see :func:`carry_back`): what an EXR of the dream holds."""
    return render.with_pixels(carry_back(render.pixels, shown.pixels, dreamed.pixels))
