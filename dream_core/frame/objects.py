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
from ..errors import BadSetting, ShapeMismatch
from ..io import Picture
from ..io.cryptomatte import Cryptomatte, read_cryptomatte

CPU = torch.device("cpu")


@dataclass
class ObjectMaps:
    steps: torch.Tensor  # [1, 1, H, W], 0 to 2
    share: torch.Tensor  # [1, 1, H, W], 0 to 1


def strength_maps(matte: Cryptomatte, strengths: ObjectStrengths, device: torch.device = CPU) -> ObjectMaps:
    """The per-pixel maps of ``strengths`` over ``matte``'s coverage, made on ``device``."""
    missing = sorted(set(strengths.objects) - set(matte.manifest))
    if missing and strengths.require_all:
        raise BadSetting(f"no object {', '.join(map(repr, missing))} in the frame's Cryptomatte; it has "
                         f"{', '.join(map(repr, matte.names())) or 'no objects'}")
    by_id = {matte.manifest[name]: float(value) for name, value in strengths.objects.items() if name in matte.manifest}
    # ids compared as int32 bit patterns: half the memory of int64, the same equality
    as_int32 = {int(np.array(i, np.uint32).view(np.int32)): v for i, v in by_id.items()}
    known = torch.tensor(sorted(as_int32), dtype=torch.int32, device=device)
    values = torch.tensor([as_int32[i] for i in known.tolist()], dtype=torch.float32, device=device)
    height, width, ranks = matte.ids.shape
    steps = torch.zeros((1, 1, height, width), device=device)
    share = torch.zeros_like(steps)
    covered = torch.zeros_like(steps)
    for rank in range(ranks):  # rank by rank: a 4K frame's ranks at once take gigabytes
        ids = torch.from_numpy(np.ascontiguousarray(matte.ids[..., rank]).view(np.int32)).to(device)[None, None]
        coverage = torch.from_numpy(np.ascontiguousarray(matte.coverage[..., rank])).to(device)[None, None]
        strength = _lookup(ids, known, values, strengths.others)
        steps += coverage * strength
        share += coverage * (strength > 0)
        covered += coverage
    world = 1.0 - covered.clamp(0.0, 1.0)
    steps += world * strengths.background
    share += world * float(strengths.background > 0)
    return ObjectMaps(steps.clamp(0.0, 2.0), share.clamp(0.0, 1.0))


def _lookup(ids: torch.Tensor, known: torch.Tensor, values: torch.Tensor, default: float) -> torch.Tensor:
    """``values`` of the ``known`` (sorted) ids, ``default`` for any other id."""
    if known.numel() == 0:
        return torch.full(ids.shape, default, device=ids.device)
    at = torch.searchsorted(known, ids).clamp(max=known.numel() - 1)
    return torch.where(known[at] == ids, values[at], torch.tensor(default, device=ids.device))


def object_maps(picture: Picture, strengths: Optional[ObjectStrengths], device: torch.device) -> Optional[ObjectMaps]:
    """The maps for a frame, or None when no strengths are set."""
    if strengths is None:
        return None
    maps = strength_maps(read_cryptomatte(picture.passes), strengths, device)
    if maps.steps.shape[-2:] != (picture.height, picture.width):
        raise ShapeMismatch(f"the Cryptomatte pass is {maps.steps.shape[-1]}x{maps.steps.shape[-2]}, the picture "
                            f"{picture.width}x{picture.height}")
    return maps


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
