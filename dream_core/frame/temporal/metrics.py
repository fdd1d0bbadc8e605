"""How much a sequence flickers: what the benchmarks and tests measure."""
from __future__ import annotations

import numpy as np
import torch

from .warping import warp


def flicker(dreams: list[torch.Tensor], flows: list[torch.Tensor], masks: list[torch.Tensor]) -> float:
    """Mean |dream N − warp(dream N−1)| over valid pixels, averaged over frames.
    ``flows[i]``/``masks[i]`` take frame i into frame i+1."""
    values = []
    for prev, cur, flow, mask in zip(dreams, dreams[1:], flows, masks):
        warped, inside = warp(prev, flow)
        valid = ((mask * inside) > 0.5).expand_as(cur)
        if valid.any():
            values.append(float((cur - warped).abs()[valid].mean()))
    return float(np.mean(values)) if values else 0.0
