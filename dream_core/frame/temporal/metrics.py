"""How much a sequence flickers: what the benchmarks and tests measure."""
from __future__ import annotations

import numpy as np
import torch

from .warping import warp


def _pairs(dreams: list[torch.Tensor], flows: list[torch.Tensor], masks: list[torch.Tensor]):
    """Per pair of frames: frame N, frame N-1 warped into it, and the valid
    pixels (non-occluded and inside the frame, as a 0/1 mask [1, 1, H, W])."""
    for prev, cur, flow, mask in zip(dreams, dreams[1:], flows, masks):
        warped, inside = warp(prev, flow)
        yield cur, warped, (mask * inside) > 0.5


def flicker(dreams: list[torch.Tensor], flows: list[torch.Tensor], masks: list[torch.Tensor]) -> float:
    """Mean |dream N − warp(dream N−1)| over valid pixels, averaged over frames.
    ``flows[i]``/``masks[i]`` take frame i into frame i+1."""
    values = []
    for cur, warped, valid in _pairs(dreams, flows, masks):
        if valid.any():
            values.append(float((cur - warped).abs()[valid.expand_as(cur)].mean()))
    return float(np.mean(values)) if values else 0.0


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
