"""The colour anchor: a carried pattern held to the colours it had when it
was dreamed afresh, so small shifts do not add up over a long shot."""
from __future__ import annotations

from typing import Optional

import torch

from ..colour import luma
from .motion import carried_or_fresh
from .tuning import TUNING, Tuning


def colour_stats(rgb: torch.Tensor) -> torch.Tensor:
    """Per pixel [luma, channel spread] [1, 2, H, W]: the spread is a
    saturation measure that scales exactly with the chroma."""
    return torch.cat([luma(rgb), (rgb.amax(dim=1) - rgb.amin(dim=1)).unsqueeze(1)], dim=1)


def weighted_means(maps: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The mean of each channel of ``maps`` [1, C, H, W], over ``weight``
    [1, 1, H, W] if given; stays on the device."""
    if weight is None:
        return maps.mean(dim=(0, 2, 3))
    return (maps * weight).sum(dim=(0, 2, 3)) / weight.sum().clamp(min=1e-6)


def brightness_saturation(rgb: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[mean luma, mean channel spread], over ``weight`` if given."""
    return weighted_means(colour_stats(rgb), weight)


def colour_anchor(dream: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Per pixel, the colours of a dream and of its render [1, 4, H, W]: a
    sequence carries them with the pattern from where it was dreamed afresh
    (see anchor_colours and next_anchor)."""
    return torch.cat([colour_stats(dream), colour_stats(source)], dim=1)


def anchor_gains(anchor: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """How much the dreams behind ``anchor`` raised brightness and
    saturation over their renders, over ``weight``: [brightness, saturation]."""
    means = weighted_means(anchor, weight)
    return means[:2] / means[2:].clamp(min=1e-6)


def anchor_colours(dream: torch.Tensor, source: torch.Tensor, anchor: torch.Tensor,
                   carried: Optional[torch.Tensor] = None, tuning: Tuning = TUNING) -> torch.Tensor:
    """Holds a carried pattern to the colours it had when it was dreamed afresh.

    Carried dreams pass through a resampling and a regrowth every frame, and
    small colour shifts would add up over a long shot (without this, a
    120-frame orbit ends 8% more saturated and 2% darker than independent
    frames). ``anchor`` (see colour_anchor), carried with the pattern, says
    what brightness and saturation gains over its render the carried content
    had when fresh; this frame's gains over the same pixels are pulled back
    to those, by at most ``tuning.anchor_limit`` per frame so nothing pops.
    The target is per pixel because content differs: a single target for the
    whole frame was pulled off by every object that entered (while a fast
    pink panel crossed a grey room, the whole frame got up to 23% more
    saturated than independent frames; flicker 2.02 against 1.46 now). With ``carried``
    (the carried share per pixel) only the carried pattern is measured and
    corrected: a fresh dream cannot have drifted."""
    limit = tuning.anchor_limit
    (target_b, target_s) = anchor_gains(anchor, carried)
    dl, ds, sl, ss = weighted_means(colour_anchor(dream, source), carried)
    y = luma(dream)
    chroma_scale = (target_s * ss / ds.clamp(min=1e-6)).clamp(1 - limit, 1 + limit)
    shift = torch.minimum(torch.maximum(target_b * sl - dl, -limit * dl), limit * dl)
    corrected = (y + shift + chroma_scale * (dream - y)).clamp(0.0, 1.0)
    return corrected if carried is None else dream + carried * (corrected - dream)


def next_anchor(dream: torch.Tensor, source: torch.Tensor, carried: Optional[torch.Tensor],
                tracked: Optional[torch.Tensor]) -> torch.Tensor:
    """The colours the next frame holds this frame's pattern to: the
    ``carried`` anchor where the motion was followed (``tracked``; also
    where a stretched pattern was dreamed afresh: the same surface keeps its
    colours), this dream's own where new content came into view."""
    return carried_or_fresh(tracked, carried, colour_anchor(dream, source))
