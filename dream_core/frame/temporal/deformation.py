"""How far the motion has stretched a carried pattern since it was dreamed
(Vector pass only), and where that calls for a fresh dream."""
from __future__ import annotations

from typing import Optional

import torch

from .blur import gaussian_blur
from .motion import carried_or_fresh
from .tuning import TUNING, Tuning

# A carried pattern is deformed with the surface it sits on. Where a turning
# surface comes to face the camera, a pattern dreamed on it foreshortened
# widens; over a 120-frame orbit it ends as bands of stretched stripes (the
# carried pattern's median stretch over the frame: 1.3x at frame 31, 1.7x at
# 61, 2.5x at 120). Each pixel carries how its pattern is deformed from the
# screen scale it was dreamed at (a 2x2 map, composed frame by frame along the
# motion) and is dreamed afresh once that stretches or squeezes it past
# Tuning.stretch_limit in any direction. Only with the Vector pass
# (Tuning.stretch_from): the measurements that chose both are beside them in
# tuning.py.


def undeformed(like: torch.Tensor) -> torch.Tensor:
    """The identity deformation [1, 4, H, W] (a 2x2 map per pixel, row by row)."""
    identity = torch.zeros(1, 4, *like.shape[-2:], device=like.device, dtype=like.dtype)
    identity[:, 0::3] = 1.0  # made on the device: a copy from the host would wait for the work queued there
    return identity


def motion_jacobian(flow: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """Per pixel, how a small patch of this frame maps onto the frame before
    (the derivatives of x + flow(x)) [1, 4, H, W]. Derivatives beyond
    ±``tuning.jacobian_limit`` are motion edges, where the pattern is not
    carried anyway: limited."""
    d_dy, d_dx = torch.gradient(flow, dim=(2, 3))
    derivatives = torch.cat([d_dx[:, 0:1], d_dy[:, 0:1], d_dx[:, 1:2], d_dy[:, 1:2]], dim=1)
    return derivatives.clamp(-tuning.jacobian_limit, tuning.jacobian_limit) + undeformed(flow)


def deformed(previous: torch.Tensor, flow: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """The deformation of the pattern carried along ``flow``: the carried
    one (warped into this frame) times this frame's motion."""
    p, q, r, s = previous.unbind(dim=1)
    a, b, c, d = motion_jacobian(flow, tuning).unbind(dim=1)
    return torch.stack([p * a + q * c, p * b + q * d, r * a + s * c, r * b + s * d], dim=1)


def stretch(deformation: torch.Tensor) -> torch.Tensor:
    """How far a deformation stretches or squeezes the pattern, in its worst
    direction: the larger of its largest singular value and the inverse of its
    smallest (1 for none) [1, 1, H, W]."""
    p, q, r, s = deformation.unbind(dim=1)
    squares = p * p + q * q + r * r + s * s
    determinant = p * s - q * r
    root = (squares.square() - 4 * determinant.square()).clamp(min=0.0).sqrt()
    largest_squared, smallest_squared = (squares + root) / 2, ((squares - root) / 2).clamp(min=1e-12)
    return torch.maximum(largest_squared, 1.0 / smallest_squared).sqrt().unsqueeze(1)


def stretched(deformation: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """Where the carried pattern is stretched past ``tuning.stretch_limit``: dreamed afresh (soft-edged)."""
    return gaussian_blur((stretch(deformation) > tuning.stretch_limit).to(deformation.dtype), tuning.stretch_edge_blur)


def next_deformation(deformation: Optional[torch.Tensor], confidence: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The deformation the next frame carries on: this frame's
    (``deformation``) where the pattern was carried (by its carried share,
    ``confidence``), none where it was dreamed afresh; None where the frame
    measured none."""
    if deformation is None:
        return None
    return carried_or_fresh(confidence, deformation, undeformed(deformation))
