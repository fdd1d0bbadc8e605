"""The carried detail at twice the frame's size, so that resampling it
frame after frame does not soften it."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .tuning import TUNING, Tuning
from .warping import warp, warp_sharp


# The detail a sequence carries is kept at twice the frame's size. Every frame
# resamples it along the motion, and a pattern of 2-4 px loses a little of its
# amplitude at each sub-pixel resampling (Catmull-Rom keeps 88% of a 4 px period
# at a half-pixel shift); over a long shot the losses multiply (20 moves of
# (0.3, 0.2) px: 19% of a 4-5 px pattern left). At twice the size the same pattern spans
# 4-8 px, where a resampling takes almost nothing, and only each frame's own
# change is upsampled, once. Measured (lite0, 256x144; 2x2 detail in the last
# quarter relative to independent frames, then flicker): pan vectors 0.85 ->
# 0.91 (1.11 -> 1.12), flow 0.83 -> 0.92 (1.93 -> 1.94); orbit vectors 0.82 ->
# 0.94 (1.09 -> 1.16), flow 0.79 -> 0.91 (1.79 -> 1.94).
def supersample(image: torch.Tensor) -> torch.Tensor:
    return F.interpolate(image, scale_factor=2, mode="bicubic", align_corners=False)


# With the Vector pass (Tuning.sharp_from) the detail is resampled by the
# interpolating cubic B-spline (warp_sharp), which keeps more of the finest
# pattern per move than Catmull-Rom: measured beside sharp_from in tuning.py.


def carry_detail(detail: torch.Tensor, fine_detail: Optional[torch.Tensor], flow: torch.Tensor,
                 mode: str, tuning: Tuning = TUNING) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The previous dream's detail moved along ``flow``: at this frame's size,
    and at twice it, from ``fine_detail`` where the chain has one. Without
    motion (``blend``) nothing is resampled: no need."""
    if mode == "blend":
        return detail, None
    fine = fine_detail if fine_detail is not None else shrinking_to(detail, supersample(detail))
    double_flow = 2 * F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=False)
    resample = warp_sharp if mode in tuning.sharp_from else warp
    carried_fine, _ = resample(fine, double_flow)
    return F.avg_pool2d(carried_fine, 2), carried_fine


def next_fine_detail(dream: torch.Tensor, source: torch.Tensor, carried: Optional[torch.Tensor],
                     carried_fine: Optional[torch.Tensor], confidence: Optional[torch.Tensor]) -> torch.Tensor:
    """The detail the next frame carries, at twice the size: what this frame
    carried (``carried_fine``, by its carried share ``confidence``), as it
    was carried, plus this frame's own change (against ``carried``, the same
    at the frame's size), upsampled once. For a chain that moves its detail
    (not ``none`` or ``blend``)."""
    detail = dream - source
    if carried_fine is None:  # the chain's first frame
        return shrinking_to(detail, supersample(detail))
    share = F.interpolate(confidence, scale_factor=2, mode="bilinear", align_corners=False)
    return shrinking_to(detail, share * carried_fine + supersample(detail - confidence * carried))


def shrinking_to(detail: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """``fine`` corrected so that its 2x2 means are ``detail`` exactly: where
    the scene stands still the next frame starts from this very dream (a
    round trip that softened it would be regrown, frame after frame: flicker;
    measured on the fast occluder, 3.08 against 2.02 with this)."""
    return fine + F.interpolate(detail - F.avg_pool2d(fine, 2), scale_factor=2, mode="nearest")
