"""Regrowth: the finest octave gives a carried pattern back the fine
amplitude resampling took, measured against the energy it had when fresh,
and a sequence's strength governor keeps that from piling up."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch

from .blur import gaussian_blur
from .motion import carried_or_fresh

if TYPE_CHECKING:
    from .carry import Prepared


REGROWTH = 1.5  # the finest octave's step per unit of missing amplitude, see prepare (measured: 1 left it soft)
STRENGTH_LIMIT = 1.3  # a carried dream's strength at most this times its sequence's first frame's, see regrowth_gain
GAIN_RATE = 4.0  # how fast the regrowth gain follows the strength: -0.4 for a strength 10% over its limit


def dream_strength(dream_value: float, render_value: float) -> Optional[float]:
    """How much a dream raised the objective over its render (a ratio; for
    fresh dreams of a shot it stays within a few percent from frame to
    frame), or None where the objective is not positive (a guide's may not be)."""
    return dream_value / render_value if render_value > 0 and dream_value > 0 else None


def regrowth_gain(gain: float, strength: float, limit: float) -> float:
    """The next frame's share of the full regrowth.

    Every frame's regrowth adds to a carried pattern that is already
    there, so without a check the dream gets stronger over the first frames
    of a shot (an orbit's strength, relative to independent frames: 1.00,
    1.13, 1.18, ... 1.38 by the tenth) until resampling takes away as much
    as the regrowth adds. The gain steps down while a frame is stronger than
    its limit and back up while it is weaker."""
    return min(1.0, max(0.0, gain + GAIN_RATE * (limit - strength) / limit))


def fine_scales(grey: torch.Tensor) -> torch.Tensor:
    """The finest scales (1-2 px) of a one-channel image [1, 1, H, W]."""
    return grey - gaussian_blur(grey, 2.0)


def pattern_energy(detail: torch.Tensor) -> torch.Tensor:
    """Local energy of the fine scales of a detail image [1, 3, H, W]: what
    resampling takes away first (one smooth map [1, 1, H, W])."""
    return gaussian_blur(fine_scales(detail.mean(dim=1, keepdim=True)).square(), 3.0)


def regrowth_share(reference: torch.Tensor, carried: torch.Tensor) -> torch.Tensor:
    """Per pixel, the share of the pattern's fine amplitude missing from the
    carried detail, against the energy it had when it was dreamed afresh
    (0 once it is back: nothing piles up, however many frames a shot has)."""
    kept = (pattern_energy(carried) / reference.clamp(min=1e-10)).clamp(0.0, 1.0)
    return 1.0 - kept.sqrt()


def next_reference(prepared: Prepared, dream: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The pattern energy the next frame holds this frame's carried detail
    to: the carried reference where the motion was followed (see
    next_anchor), the new dream's own where new content came into view."""
    return carried_or_fresh(prepared.tracked, prepared.reference, pattern_energy(dream - source))
