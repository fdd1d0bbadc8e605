"""How much a sequence flickers: what the benchmarks and tests measure."""
from __future__ import annotations

import numpy as np
import torch

from .blur import gaussian_blur
from .warping import warp

# The pattern scale's low-pass (px, Gaussian sigma) for pattern_flicker. No
# resampling moves a pattern with 2-3 px detail by a fraction of a pixel
# exactly: the held-out turntable's dream, moved by an exact sub-pixel
# (Fourier) shift of 0.25, 0.5 and (0.37, 0.21) px, reads a pixel flicker of
# 1.5-2.6 times its renders' change, though nothing boiled. Smoothed by
# sigma 1 px first (a 2 px period keeps 1% of its amplitude, 6 px 58%,
# 8 px 73%) the same shifts read 0.05-0.10 (docs/BENCHMARKS.md, "The flicker
# at the pattern's scale").
PATTERN_SCALE = 1.0


def _pairs(dreams: list[torch.Tensor], flows: list[torch.Tensor], masks: list[torch.Tensor], blur: float = 0.0):
    """Per pair of frames: frame N, frame N-1 warped into it, and the valid
    pixels (non-occluded and inside the frame, as a 0/1 mask [1, 1, H, W]);
    both frames smoothed first by a Gaussian of sigma ``blur`` px, if any."""
    for prev, cur, flow, mask in zip(dreams, dreams[1:], flows, masks):
        if blur:
            prev, cur = gaussian_blur(prev, blur), gaussian_blur(cur, blur)
        warped, inside = warp(prev, flow)
        yield cur, warped, (mask * inside) > 0.5


def flicker(dreams: list[torch.Tensor], flows: list[torch.Tensor], masks: list[torch.Tensor],
            blur: float = 0.0) -> float:
    """Mean |dream N − warp(dream N−1)| over valid pixels, averaged over frames.
    ``flows[i]``/``masks[i]`` take frame i into frame i+1. ``blur``: a
    Gaussian sigma (px) both frames are smoothed by first (see pattern_flicker)."""
    values = []
    for cur, warped, valid in _pairs(dreams, flows, masks, blur):
        if valid.any():
            values.append(float((cur - warped).abs()[valid.expand_as(cur)].mean()))
    return float(np.mean(values)) if values else 0.0


def pattern_flicker(dreams: list[torch.Tensor], flows: list[torch.Tensor], masks: list[torch.Tensor]) -> float:
    """:func:`flicker` at the pattern's scale: both frames smoothed by a
    Gaussian of sigma PATTERN_SCALE px first, so what a warp cannot move
    exactly (2-3 px detail moved by a fraction of a pixel) does not read as
    a change; a boil of the pattern itself does (independent frames read
    14-19 times their renders' change this way, 23 at full detail)."""
    return flicker(dreams, flows, masks, blur=PATTERN_SCALE)


def moved_exactly(image: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """``image`` [N, C, H, W] moved right by ``dx`` and down by ``dy`` px by a
    Fourier shift: exact for every period a sampled image can hold (no
    resampling loss), wrapping round at the edges. What a perfectly coherent
    move reads: the floor of :func:`flicker` for that image."""
    h, w = image.shape[-2:]
    fy, fx = torch.fft.fftfreq(h).view(h, 1), torch.fft.fftfreq(w).view(1, w)
    return torch.fft.ifft2(torch.fft.fft2(image) * torch.exp(-2j * torch.pi * (fx * dx + fy * dy))).real


def warp_error(frames: list[torch.Tensor], flows: list[torch.Tensor], masks: list[torch.Tensor]) -> float:
    """The warping error of Lai et al. (ECCV 2018, "Learning Blind Video
    Temporal Consistency"), E_warp = mean over t of
    (1 / sum_i M_t(i)) * sum_i M_t(i) * ||V_t(i) − warp(V_{t−1})(i)||²:
    per pair of frames, the squared distance between the RGB vectors (summed
    over the 3 channels, values in [0, 1]) of frame t and frame t−1 warped
    into it, averaged over the non-occluded pixels M (the same 0/1 mask as
    :func:`flicker`), then averaged over the pairs. The paper warps by
    estimated optical flow; here ``flows`` are whatever the caller passes
    (the benchmarks pass the renderer's own motion vectors)."""
    values = []
    for cur, warped, valid in _pairs(frames, flows, masks):
        count = valid.sum()
        if count > 0:
            values.append(float(((cur - warped).square().sum(dim=1, keepdim=True) * valid).sum() / count))
    return float(np.mean(values)) if values else 0.0
