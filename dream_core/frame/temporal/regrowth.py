"""Regrowth: the finest octave gives a carried pattern back the fine
amplitude resampling took, measured against the energy it had when fresh,
and a sequence's strength governor keeps that from piling up."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .blur import gaussian_blur
from .motion import carried_or_fresh
from .tuning import TUNING, Tuning


def dream_strength(dream_value: float, render_value: float) -> Optional[float]:
    """How much a dream raised the objective over its render (a ratio; for
    fresh dreams of a shot it stays within a few percent from frame to
    frame), or None where the objective is not positive (a guide's may not be)."""
    return dream_value / render_value if render_value > 0 and dream_value > 0 else None


def regrowth_gain(gain: float, strength: float, limit: float, tuning: Tuning = TUNING) -> float:
    """The next frame's share of the full regrowth.

    Every frame's regrowth adds to a carried pattern that is already
    there, so without a check the dream gets stronger over the first frames
    of a shot (an orbit's strength, relative to independent frames: 1.00,
    1.13, 1.18, ... 1.38 by the tenth) until resampling takes away as much
    as the regrowth adds. The gain steps down while a frame is stronger than
    its limit and back up while it is weaker (by ``tuning.gain_rate``)."""
    return min(1.0, max(0.0, gain + tuning.gain_rate * (limit - strength) / limit))


def first_strength(limit: float, tuning: Tuning = TUNING) -> float:
    """The strength of a chain's first frame, from the limit it set (see regrowth_gain)."""
    return limit / tuning.strength_limit


def strength_lift(lift: float, strength: float, limit: float, tuning: Tuning = TUNING) -> float:
    """The next frame's lift: the share of a full step its finest octave
    takes over the carried pattern beyond the damping and the regrowth,
    whatever the pattern's energy (where the render's noise is new, see
    carry.lifted).

    On a noisy render the carried pattern was grown on the previous render's
    noise, and on this render's it reads weaker though none of its energy is
    missing, so the regrowth gives nothing back. The lift steps up while a
    frame is weaker than ``tuning.strength_floor`` times its chain's first
    frame's and back down (to none) while it is stronger (by
    ``tuning.lift_rate``); a dream at its first frame's strength is never lifted."""
    floor = tuning.strength_floor * first_strength(limit, tuning)
    if floor <= 0.0:
        return 0.0
    return min(1.0 - tuning.damping, max(0.0, lift + tuning.lift_rate * (floor - strength) / floor))


def fine_scales(grey: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """The finest scales (1-2 px: finer than ``tuning.energy_band``) of a one-channel image [1, 1, H, W]."""
    return grey - gaussian_blur(grey, tuning.energy_band)


def fine_band_change(dream: torch.Tensor, base: torch.Tensor, carried: torch.Tensor,
                     tuning: Tuning = TUNING) -> torch.Tensor:
    """``dream`` with the ascent's change over a carried pattern (``carried``:
    its share per pixel [1, 1, H, W]) kept to the finest scales, those the
    regrowth gives back (finer than ``tuning.energy_band``), plus
    ``tuning.coarse_change`` of the rest: the steps that regrow the fine
    detail also nudge the coarser pattern, a little differently every frame,
    and a pattern carried on should not move at the scale the eye follows."""
    if tuning.coarse_change == 1.0:
        return dream
    coarse = gaussian_blur(dream - base, tuning.energy_band)
    return (dream - (1.0 - tuning.coarse_change) * carried * coarse).clamp(0.0, 1.0)


def pattern_energy(detail: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """Local energy of the fine scales of a detail image [1, 3, H, W]: what
    resampling takes away first (one smooth map [1, 1, H, W])."""
    return gaussian_blur(fine_scales(detail.mean(dim=1, keepdim=True), tuning).square(), tuning.energy_smoothing)


# The carried pattern's energy is measured on the detail a chain carries at
# twice the size (see fine_detail), not on the frame's: at the frame's size a
# pattern moved by a fraction of a pixel reads weaker though nothing of it was
# lost (its finest scales fall between the pixels: a dreamed frame moved by
# 0.25 px read 8% of its energy gone, by 0.5 px 15%, by 1 px none), and the
# finest octave regrew that every frame, a different share wherever the
# motion's fraction of a pixel changed: the carried pattern boiled (regrowth
# at 12% of a full step over the pan's carried pixels where it was 1%). At
# twice the size the same moves read at most 1.4% gone.
def fine_pattern_energy(fine: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """:func:`pattern_energy` of a detail image at twice the frame's size
    [1, 3, 2H, 2W], over the same scales (1-2 px of the frame), as a map at
    the frame's size [1, 1, H, W]."""
    grey = fine.mean(dim=1, keepdim=True)
    band = grey - gaussian_blur(grey, 2 * tuning.energy_band)  # the frame's px are two here
    return gaussian_blur(F.avg_pool2d(band.square(), 2), tuning.energy_smoothing)


def detail_energy(detail: torch.Tensor, fine: Optional[torch.Tensor] = None, tuning: Tuning = TUNING) -> torch.Tensor:
    """The energy regrowth measures: on the detail at twice the size where the
    chain carries one (``fine``), else on the frame's detail."""
    return pattern_energy(detail, tuning) if fine is None else fine_pattern_energy(fine, tuning)


def regrowth_share(reference: torch.Tensor, carried: torch.Tensor, carried_fine: Optional[torch.Tensor] = None,
                   tuning: Tuning = TUNING) -> torch.Tensor:
    """Per pixel, the share of the pattern's fine amplitude missing from the
    carried detail (measured on ``carried_fine`` where given, see
    detail_energy), against the energy it had when it was dreamed afresh
    (0 once it is back: nothing piles up, however many frames a shot has)."""
    kept = (detail_energy(carried, carried_fine, tuning) / reference.clamp(min=1e-10)).clamp(0.0, 1.0)
    return 1.0 - kept.sqrt()


def next_reference(dream: torch.Tensor, source: torch.Tensor, carried: Optional[torch.Tensor],
                   tracked: Optional[torch.Tensor], fine_detail: Optional[torch.Tensor] = None,
                   tuning: Tuning = TUNING) -> torch.Tensor:
    """The pattern energy the next frame holds this frame's carried detail
    to: the ``carried`` reference where the motion was followed
    (``tracked``, see next_anchor), the new dream's own where new content
    came into view, measured as the next frame measures its carried detail:
    on ``fine_detail`` (what next_fine_detail leaves) where the chain has one."""
    return carried_or_fresh(tracked, carried, detail_energy(dream - source, fine_detail, tuning))
