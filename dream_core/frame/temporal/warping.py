"""Resampling along a flow: the one warp every carried map goes through,
and its sharper variant for the pattern itself."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ...engine.device import constant
from .blur import separable

Weights = Callable[[torch.Tensor], torch.Tensor]  # fractions t -> the 4 taps' weights [4, *t.shape]

# A cubic kernel's tap weights are cubic polynomials in the fraction t: per
# tap (offsets -1, 0, 1, 2), the coefficients of 1, t, t^2 and t^3.
Polynomials = tuple[tuple[float, float, float, float], ...]
CATMULL_ROM: Polynomials = ((0.0, -0.5, 1.0, -0.5), (1.0, 0.0, -2.5, 1.5), (0.0, 0.5, 2.0, -1.5),
                            (0.0, 0.0, -0.5, 0.5))
BSPLINE: Polynomials = ((1 / 6, -0.5, 0.5, -1 / 6), (2 / 3, 0.0, -1.0, 0.5), (1 / 6, 0.5, 0.5, -0.5),
                        (0.0, 0.0, 0.0, 1 / 6))


def tap_weights(polynomials: Polynomials, t: torch.Tensor) -> torch.Tensor:
    """The 4 taps' weights [4, *t.shape] for fractions ``t``, all at once
    by Horner's rule: six operations a warp, whatever the kernel."""
    by_power = tuple(zip(*polynomials))  # [4 powers][4 taps]
    c = constant(by_power, t.device, t.dtype).view(4, 4, *[1] * t.dim())
    return (c[3] * t).add_(c[2]).mul_(t).add_(c[1]).mul_(t).add_(c[0])


def catmull_rom(t: torch.Tensor) -> torch.Tensor:
    """Weights of the 4 taps at offsets -1, 0, 1, 2 for fractions ``t``.
    Catmull-Rom, not the a = -0.75 cubic of ``grid_sample``: a pattern
    carried through a hundred frames is resampled a hundred times, and that
    cubic lifts periods of about 6 px by up to 3% each time (30x over 120
    frames: stripes); this one never lifts any, and keeps far more detail
    than bilinear (88% against 71% of a 4 px period at half-pixel shifts)."""
    return tap_weights(CATMULL_ROM, t)


def warp(image: torch.Tensor, flow: torch.Tensor, weights: Weights = catmull_rom) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward warp: out(x) = image(x + flow(x)), Catmull-Rom unless
    ``weights`` says otherwise, edges repeated; also the mask of samples
    that came from inside the frame."""
    h, w = flow.shape[-2:]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    map_x, map_y = (xs + flow[:, 0])[0], (ys + flow[:, 1])[0]
    x0, y0 = map_x.floor(), map_y.floor()
    weights_x, weights_y = weights(map_x - x0).view(1, 4, h * w), weights(map_y - y0)
    taps = torch.arange(-1, 3, device=flow.device, dtype=torch.int32).view(4, 1)
    columns = (x0.to(torch.int32).view(1, -1) + taps).clamp_(0, w - 1)
    rows = (y0.to(torch.int32).view(1, -1) + taps).clamp_(0, h - 1).mul_(w)
    flat = image.reshape(image.shape[1], h * w)
    row_of_taps = _row_tap_by_tap if flat.device.type == "cpu" else _row_at_once
    out = torch.zeros_like(flat)
    for row, weight_y in zip(rows, weights_y):
        out += row_of_taps(flat, columns + row, weights_x).mul_(weight_y.view(1, -1))
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return out.view(image.shape), inside[None, None].to(image.dtype)


# One row of a warp's taps: the 4 samples at ``indices`` [4, N] weighed by
# ``weights`` [1, 4, N]. On a GPU all 4 come in one gather: a frame warps in
# a few dozen operations, not a few hundred, each a kernel launch. On the
# CPU one long gather is far slower than four short ones (measured at 540p,
# 14 channels: 111 ms against 29).
def _row_at_once(flat: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    fetched = flat.index_select(1, indices.view(-1)).view(flat.shape[0], 4, -1)
    return fetched.mul_(weights).sum(dim=1)


def _row_tap_by_tap(flat: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    total = flat.index_select(1, indices[0]).mul_(weights[:, 0])
    for index, weight in zip(indices[1:], weights[0, 1:]):
        total.addcmul_(flat.index_select(1, index), weight)
    return total


# The interpolating cubic B-spline loses far less of a fine pattern per
# resampling than Catmull-Rom and, like it, never lifts any period. Per move
# of half a pixel it keeps 99.6% of a 6 px period (Catmull-Rom 97.4%): over
# 40 moves 85% against 35%. It first turns the samples into B-spline
# coefficients: the exact inverse of the spline's (1, 4, 1) / 6 is the
# two-sided filter sqrt(3) * p**|k|, p = sqrt(3) - 2, cut here at 12 taps a
# side (a still frame comes back within 1e-6).
BSPLINE_POLE = math.sqrt(3) - 2
BSPLINE_PREFILTER = tuple(math.sqrt(3) * BSPLINE_POLE ** abs(k) for k in range(-12, 13))


def bspline(t: torch.Tensor) -> torch.Tensor:
    """Cubic B-spline weights of the 4 taps at offsets -1, 0, 1, 2, for coefficients (see bspline_coefficients)."""
    return tap_weights(BSPLINE, t)


def bspline_coefficients(image: torch.Tensor) -> torch.Tensor:
    """The cubic B-spline coefficients [N, C, H, W] whose spline passes
    through ``image``'s samples. The edges are mirrored, so the coefficients
    mirror the same way and the warp's repeated edge tap is exact."""
    return separable(image, BSPLINE_PREFILTER, edges="mirror")


def warp_sharp(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`warp` by the interpolating cubic B-spline: for the pattern a
    sequence carries, resampled once a frame for as long as it stays in view."""
    return warp(bspline_coefficients(image), flow, bspline)
