"""Cross-fading two chains' dreams of one frame at a chunk seam, keeping
the dream's strength.

Two chains started apart grow unrelated patterns. A plain pixel average of
them has the render's colours and half of each pattern: their details
partly cancel, and the faded frames look washed out (measured on the pan
shot: a fifth of the pattern's strength gone halfway through a fade). So
the fade mixes the two *details* (dream minus render) and scales the mix
back to the strength the two have, weighted by the ramp: where the
patterns agree (``s`` = 1) nothing changes; where they are unrelated and
equally strong, the halfway frame's mixed detail is scaled by 1.41.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeMismatch


def crossfade(render: np.ndarray, before: np.ndarray, after: np.ndarray, share: float,
              linear: bool = False) -> np.ndarray:
    """``share`` of the way from the dream ``before`` to the dream ``after``
    of ``render`` (H×W×C pixels, alpha untouched); ``linear``: scene-linear
    pixels (only negatives clipped), else display pixels in [0, 1]."""
    if not render.shape == before.shape == after.shape:
        raise ShapeMismatch(f"a seam's frames differ in size: {render.shape}, {before.shape}, {after.shape}")
    colour = slice(0, 3) if render.shape[-1] >= 3 else slice(0, 1)
    base = render[..., colour].astype(np.float64)
    a, b = before[..., colour] - base, after[..., colour] - base
    mixed = (1.0 - share) * a + share * b
    wanted = (1.0 - share) * np.mean(a * a) + share * np.mean(b * b)
    have = np.mean(mixed * mixed)
    scale = np.sqrt(wanted / have) if have > 0 else 1.0
    out = after.astype(np.float32).copy()
    colours = base + scale * mixed
    out[..., colour] = np.maximum(colours, 0.0) if linear else np.clip(colours, 0.0, 1.0)
    return out
