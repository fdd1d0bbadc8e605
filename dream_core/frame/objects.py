"""Per-object dreaming: a frame's Cryptomatte object pass and the objects'
strengths make two maps.

- ``steps`` scales the ascent per pixel (0 to 2): a pixel shared by objects
  takes each one's strength by its coverage.
- ``share`` is how much of each pixel belongs to something that dreams at
  all (0 to 1); the dream is laid over the render by it at the end, so an
  object at 0 keeps its rendered pixels exactly, whatever the coarse octaves,
  the carried dream of the frame before or the colour anchor did near it.

At coarse octaves a clean object's pixels take their dreamed neighbours'
strength: a coarse pattern then grows across the edge instead of fading out
before it, and the final share cuts it cleanly at the object's outline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ObjectStrengths
from ..errors import BadSetting
from ..io import Picture
from ..io.cryptomatte import Cryptomatte, read_cryptomatte


@dataclass
class ObjectMaps:
    steps: np.ndarray  # H×W, 0 to 2
    share: np.ndarray  # H×W, 0 to 1


def strength_maps(matte: Cryptomatte, strengths: ObjectStrengths) -> ObjectMaps:
    """The per-pixel maps of ``strengths`` over ``matte``'s coverage."""
    missing = sorted(set(strengths.objects) - set(matte.manifest))
    if missing and strengths.require_all:
        raise BadSetting(f"no object {', '.join(map(repr, missing))} in the frame's Cryptomatte; it has "
                         f"{', '.join(map(repr, matte.names())) or 'no objects'}")
    by_id = {matte.manifest[name]: float(value) for name, value in strengths.objects.items() if name in matte.manifest}
    unique, inverse = np.unique(matte.ids, return_inverse=True)
    per_rank = np.array([by_id.get(int(i), strengths.others) for i in unique], dtype=np.float32)
    per_rank = per_rank[inverse.reshape(matte.ids.shape)]
    covered = matte.coverage.sum(axis=-1).clip(0.0, 1.0)
    world = 1.0 - covered
    steps = (matte.coverage * per_rank).sum(axis=-1) + world * strengths.background
    share = (matte.coverage * (per_rank > 0)).sum(axis=-1) + world * float(strengths.background > 0)
    return ObjectMaps(steps.clip(0.0, 2.0).astype(np.float32), share.clip(0.0, 1.0).astype(np.float32))


def object_maps(picture: Picture, strengths: Optional[ObjectStrengths]) -> Optional[ObjectMaps]:
    """The maps for a frame, or None when no strengths are set."""
    if strengths is None:
        return None
    return strength_maps(read_cryptomatte(picture.passes), strengths)


def octave_steps(steps: torch.Tensor, share: torch.Tensor, octave_scale: float):
    """The step map for each octave, by the octaves still to come after it
    (0: the finest): pixels that do not dream take the strongest step
    within that octave's pixel size, so a coarse pattern reaches the edge."""
    def at(remaining: int) -> torch.Tensor:
        radius = math.ceil(octave_scale**remaining) if remaining > 0 else 0
        if radius == 0:
            return steps
        spread = F.max_pool2d(steps, 2 * radius + 1, stride=1, padding=radius)
        return share * steps + (1.0 - share) * spread
    return at


def lay_over(render: torch.Tensor, dreamed: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """The dream where the frame dreams, the render where it does not."""
    return render + share * (dreamed - render)
