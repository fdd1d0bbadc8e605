"""Temporal coherence for animations: carry the previous frame's dream into
the next frame along the motion, so patterns move with the scene instead of
boiling.

Motion comes from Blender's Vector pass when the frames have one (exact),
from optical flow between consecutive renders otherwise (OpenCV's DIS), or
not at all (``blend``: a plain mix, for material without motion). Where the
motion is unreliable (pixels revealed by moving objects, pixels entering the
frame, a warp that disagrees with the new render) a soft mask hands the
pixel back to the fresh render.

Images here are dream-space sRGB tensors [1, 3, H, W] in [0, 1], flows
[1, 2, H, W] in pixels, masks [1, 1, H, W], all on the dreaming device:
only optical flow estimation (OpenCV) leaves it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..config import TEMPORAL_MODES
from ..errors import BadSetting
from .colour import luma


def vectors_to_flow(vectors: torch.Tensor) -> torch.Tensor:
    """Blender's Vector pass [1, 4, H, W] (X, Y towards the previous frame,
    in pixels, Y pointing up) as a backward flow in image coordinates (rows
    down): pixel (x, y) of frame N was at (x + flow_x, y + flow_y) in N-1."""
    return torch.cat([vectors[:, 0:1], -vectors[:, 1:2]], dim=1)


def next_flow_from_vectors(vectors: torch.Tensor) -> torch.Tensor:
    """Forward flow of a frame (where its pixels go in the next frame) from
    Vector.Z/W, which Blender stores with the opposite sign of X/Y."""
    return torch.cat([-vectors[:, 2:3], vectors[:, 3:4]], dim=1)


def _grey8(rgb: torch.Tensor) -> np.ndarray:
    return (luma(rgb)[0, 0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


# Renders are smoothed before the flow is estimated: a path tracer's noise at
# low sample counts is per pixel and, with a fixed seed (Cycles' default),
# stays on the screen, so on smooth surfaces the flow follows the noise (0 px)
# instead of the surface. Measured on three Cycles shots at 16 samples (mean
# error against the Vector pass, px): pan 1.39 -> 1.22, orbit 0.92 -> 0.66,
# fast occluder 4.05 -> 4.10; sigma 2 and 4 were worse on the pan, 4 better on the orbit.
FLOW_SMOOTHING = 3.0  # px, Gaussian sigma


def _flow_input(rgb: torch.Tensor) -> np.ndarray:
    return cv2.GaussianBlur(_grey8(rgb), (0, 0), FLOW_SMOOTHING)


def estimate_flow(from_rgb: torch.Tensor, to_rgb: torch.Tensor) -> torch.Tensor:
    """Dense flow f with to(x) ≈ from(x + f(x)) (DIS, offline, fast; on the
    CPU), estimated on smoothed renders (see FLOW_SMOOTHING)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(_flow_input(to_rgb), _flow_input(from_rgb), None)
    return torch.from_numpy(flow).permute(2, 0, 1)[None].to(to_rgb.device)


def catmull_rom(t: torch.Tensor) -> list[torch.Tensor]:
    """Weights of the 4 taps at offsets -1, 0, 1, 2 for fractions ``t``.
    Catmull-Rom, not the a = -0.75 cubic of ``grid_sample``: a pattern
    carried through a hundred frames is resampled a hundred times, and that
    cubic lifts periods of about 6 px by up to 3% each time (30x over 120
    frames: stripes); this one never lifts any, and keeps far more detail
    than bilinear (88% against 71% of a 4 px period at half-pixel shifts)."""
    t2, t3 = t * t, t * t * t
    return [(-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2, (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2]


def warp(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward warp: out(x) = image(x + flow(x)), Catmull-Rom, edges
    repeated; also the mask of samples that came from inside the frame."""
    h, w = flow.shape[-2:]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    map_x, map_y = (xs + flow[:, 0])[0], (ys + flow[:, 1])[0]
    x0, y0 = map_x.floor(), map_y.floor()
    wx, wy = catmull_rom(map_x - x0), catmull_rom(map_y - y0)
    x0, y0 = x0.long().reshape(-1), y0.long().reshape(-1)
    flat = image.reshape(image.shape[1], h * w)
    out = torch.zeros_like(flat)
    columns = [(x0 + (i - 1)).clamp(0, w - 1) for i in range(4)]
    for j, weight_y in enumerate(wy):
        row = (y0 + (j - 1)).clamp(0, h - 1) * w
        for column, weight_x in zip(columns, wx):
            # index_select rather than flat[:, index]: 35% faster on the CPU (540p, 7 channels)
            out += flat.index_select(1, row + column) * (weight_y * weight_x).reshape(1, -1)
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return out.reshape(image.shape), inside[None, None].to(image.dtype)


def _norm(flow: torch.Tensor) -> torch.Tensor:
    return flow.square().sum(dim=1, keepdim=True).sqrt()


def consistency(backward: torch.Tensor, forward_prev: torch.Tensor, tolerance: float = 0.5) -> torch.Tensor:
    """Soft forward/backward check: following the backward flow, then the
    previous frame's forward flow, should come home."""
    there, _ = warp(forward_prev, backward)
    error = _norm(backward + there)
    scale = tolerance + 0.05 * (_norm(backward) + _norm(there))
    return torch.exp(-((error / scale) ** 2))


def gaussian_blur(mask: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian of a [N, C, H, W] mask (radius 4 sigma, edges repeated)."""
    radius = max(1, round(4 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    weights = taps / taps.sum()
    # On the CPU a few-channel convolution is pathological (measured at 1080p:
    # 86 ms as conv2d, 29 ms as shifted sums); on a GPU the shifted sums are
    # dozens of tiny kernels each, and every frame blurs a dozen times.
    blur = _blur_shifted if mask.device.type == "cpu" else _blur_convolved
    return blur(mask, weights)


def _blur_shifted(mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    radius, (h, w), taps = len(weights) // 2, mask.shape[-2:], weights.tolist()
    padded = F.pad(mask, (radius, radius, 0, 0), mode="replicate")
    rows = sum(k * padded[..., i:i + w] for i, k in enumerate(taps))
    padded = F.pad(rows, (0, 0, radius, radius), mode="replicate")
    return sum(k * padded[..., i:i + h, :] for i, k in enumerate(taps))


def _blur_convolved(mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    radius, channels = len(weights) // 2, mask.shape[1]
    padded = F.pad(mask, (radius, radius, radius, radius), mode="replicate")
    kernel = weights.to(mask.device, mask.dtype).view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    rows = F.conv2d(padded, kernel, groups=channels)
    return F.conv2d(rows, kernel.transpose(2, 3), groups=channels)


def reliability(warped_source: torch.Tensor, source: torch.Tensor, sigma: float = 0.06) -> torch.Tensor:
    """Soft mask from the warp error against the current render: a revealed
    background does not look like the foreground the warp put there. Both
    are smoothed first: a path tracer's noise differs from frame to frame
    and is no sign of a bad warp."""
    smooth = gaussian_blur(warped_source - source, 1.0)
    error = smooth.abs().amax(dim=1, keepdim=True)
    return gaussian_blur(torch.exp(-((error / sigma) ** 2)))  # soft edges, no hard seams


def carried_share(confidence: torch.Tensor) -> torch.Tensor:
    """How much of the carried pattern a pixel keeps: all of it where the
    motion is trusted, none where it is not, a short soft ramp between. (A
    share that follows the confidence itself would shrink the pattern by
    that factor every frame: after a few dozen frames, only blobs are left.)"""
    t = ((confidence - 0.25) / 0.5).clamp(0.0, 1.0)
    return t * t * (3 - 2 * t)


@dataclass
class Previous:
    """What one frame leaves for the next (tensors on the dreaming device)."""

    source: torch.Tensor
    dream: torch.Tensor
    vectors: Optional[torch.Tensor] = None
    anchor: Optional[torch.Tensor] = None  # the colours of the pattern when fresh [1, 4, H, W], see colour_anchor
    reference: Optional[torch.Tensor] = None  # the pattern's energy when fresh [1, 1, H, W], see next_reference
    strength_limit: Optional[float] = None  # the most a carried dream may raise the objective, see regrowth_gain
    gain: float = 1.0  # the share of the full regrowth the next frame takes, see regrowth_gain
    fine_detail: Optional[torch.Tensor] = None  # the dream's detail at twice the size, see next_fine_detail
    deformation: Optional[torch.Tensor] = None  # how far the carried pattern is stretched [1, 4, H, W], see stretch


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
                   limit: float = 0.1, carried: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Holds a carried pattern to the colours it had when it was dreamed afresh.

    Carried dreams pass through a resampling and a regrowth every frame, and
    small colour shifts would add up over a long shot (without this, a
    120-frame orbit ends 8% more saturated and 2% darker than independent
    frames). ``anchor`` (see colour_anchor), carried with the pattern, says
    what brightness and saturation gains over its render the carried content
    had when fresh; this frame's gains over the same pixels are pulled back
    to those, by at most ``limit`` per frame so nothing pops. The target is
    per pixel because content differs: a single target for the whole frame
    was pulled off by every object that entered (while a fast pink panel
    crossed a grey room, the whole frame got up to 23% more saturated than
    independent frames; flicker 2.02 against 1.46 now). With ``carried``
    (the carried share per pixel) only the carried pattern is measured and
    corrected: a fresh dream cannot have drifted."""
    (target_b, target_s) = anchor_gains(anchor, carried)
    dl, ds, sl, ss = weighted_means(colour_anchor(dream, source), carried)
    y = luma(dream)
    chroma_scale = (target_s * ss / ds.clamp(min=1e-6)).clamp(1 - limit, 1 + limit)
    shift = torch.minimum(torch.maximum(target_b * sl - dl, -limit * dl), limit * dl)
    corrected = (y + shift + chroma_scale * (dream - y)).clamp(0.0, 1.0)
    return corrected if carried is None else dream + carried * (corrected - dream)


def next_anchor(prepared: Prepared, dream: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The colours the next frame holds this frame's pattern to: the carried
    anchor where the motion was followed (also where a stretched pattern was
    dreamed afresh: the same surface keeps its colours), this dream's own
    where new content came into view."""
    return carried_or_fresh(prepared.tracked, prepared.anchor, colour_anchor(dream, source))


def carried_or_fresh(confidence: Optional[torch.Tensor], carried: Optional[torch.Tensor],
                     fresh: torch.Tensor) -> torch.Tensor:
    """Per pixel, what was carried by the carried share and what is fresh by the rest."""
    if confidence is None or carried is None:
        return fresh
    return confidence * carried + (1.0 - confidence) * fresh


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


@dataclass
class Prepared:
    base: torch.Tensor  # the image to dream
    step_mask: Optional[torch.Tensor]  # per-pixel step scale, or None for full steps everywhere
    confidence: Optional[torch.Tensor]  # where the previous dream was carried over
    mode: str
    fine_step_mask: Optional[torch.Tensor] = None  # the finest octave's, where it differs from step_mask
    reference: Optional[torch.Tensor] = None  # the carried pattern's energy when it was fresh, see next_reference
    carried: Optional[torch.Tensor] = None  # the previous dream's detail moved into this frame
    carried_fine: Optional[torch.Tensor] = None  # the same at twice the size, see next_fine_detail
    anchor: Optional[torch.Tensor] = None  # the carried pattern's colours when fresh, see anchor_colours
    tracked: Optional[torch.Tensor] = None  # where the motion was followed: confidence before a stretch's refresh
    deformation: Optional[torch.Tensor] = None  # how far the carried pattern is stretched, see stretch


def resolve_mode(mode: str, vectors: Optional[torch.Tensor]) -> str:
    if mode not in TEMPORAL_MODES:
        raise BadSetting(f"temporal mode must be one of {', '.join(TEMPORAL_MODES)}, got {mode!r}")
    if mode == "auto":
        return "vectors" if vectors is not None else "flow"
    if mode == "vectors" and vectors is None:
        raise BadSetting("temporal mode 'vectors' needs the Vector pass (multilayer EXR from Blender); "
                         "use 'flow' or 'auto'")
    return mode


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


def prepare(mode: str, source: torch.Tensor, vectors: Optional[torch.Tensor], previous: Optional[Previous],
            damping: float = 0.01, regrowth: float = REGROWTH) -> Prepared:
    """The image to dream for this frame and where to damp the ascent.

    With motion, the previous dream's detail (dream minus its render) is
    moved into this frame (carried at twice its size, see supersample) and
    added to this render where reliable; the ascent there is damped
    (×``damping``) so the carried pattern is refined rather than regrown.
    Resampling still softens the finest scale a little every frame, so the
    finest octave regrows, per pixel, what this frame's carry lost, measured
    against the pattern's energy when it was dreamed afresh (``regrowth`` ×
    the previous frame's gain, see regrowth_gain, × the missing share of its
    amplitude): sharp after a hundred frames, and nothing piles up in a slow
    shot. With the Vector pass, a pattern the motion has stretched past
    STRETCH_LIMIT is dreamed afresh (see stretched). ``blend`` carries
    without motion: the previous dream stays only where the render did not
    change."""
    mode = resolve_mode(mode, vectors)
    if mode == "none" or previous is None or previous.source.shape != source.shape:
        return Prepared(source, None, None, mode)
    forward = None
    if mode == "blend":
        flow = torch.zeros_like(source[:, :2])
    elif mode == "vectors":
        flow = vectors_to_flow(vectors)
        forward = next_flow_from_vectors(previous.vectors) if previous.vectors is not None else None
    else:
        flow = estimate_flow(previous.source, source)
    detail = previous.dream - previous.source
    # one warp for the previous render (to judge the warp) and what the pattern carries with it
    with_pattern = {"source": previous.source,
                    "reference": previous.reference if previous.reference is not None else pattern_energy(detail)}
    if previous.anchor is not None:
        with_pattern["anchor"] = previous.anchor
    if mode in STRETCH_FROM:
        with_pattern["deformation"] = previous.deformation if previous.deformation is not None else undeformed(source)
    warped_all, inside = warp(torch.cat(list(with_pattern.values()), dim=1), flow)
    warped = dict(zip(with_pattern, warped_all.split([t.shape[1] for t in with_pattern.values()], dim=1)))
    warped_detail, carried_fine = carry_detail(detail, previous.fine_detail, flow, supersampled=mode != "blend")
    confidence = inside * reliability(warped["source"], source)
    if forward is not None:
        confidence = confidence * consistency(flow, forward)
    tracked = carried_share(confidence)
    deformation = deformed(warped["deformation"], flow) if "deformation" in warped else None
    confidence = tracked if deformation is None else tracked * (1.0 - stretched(deformation))
    base = (source + confidence * warped_detail).clamp(0.0, 1.0)
    step_mask = (1.0 - confidence) + confidence * damping
    regrow = (damping + regrowth * previous.gain * regrowth_share(warped["reference"], warped_detail)).clamp(max=1.0)
    fine_step_mask = (1.0 - confidence) + confidence * regrow
    return Prepared(base, step_mask, confidence, mode, fine_step_mask, warped["reference"], warped_detail,
                    carried_fine, warped.get("anchor"), tracked, deformation)


# A carried pattern is deformed with the surface it sits on. Where a turning
# surface comes to face the camera, a pattern dreamed on it foreshortened
# widens; over a 120-frame orbit it ends as bands of stretched stripes (the
# carried pattern's median stretch over the frame: 1.3x at frame 31, 1.7x at
# 61, 2.5x at 120). Each pixel carries how its pattern is deformed from the
# screen scale it was dreamed at (a 2x2 map, composed frame by frame along the
# motion) and is dreamed afresh once that stretches or squeezes it past
# STRETCH_LIMIT in any direction (2.5 and 3 both end the stripes; 3 renews less
# and keeps more detail: orbit 0.86 against 0.84 of independent frames'). Only
# with the Vector pass: optical flow's derivatives are too rough to measure a
# stretch (on the pan DIS reads a median 1.8x where the vectors read 1.4x), and
# renewing on them took the pan's `flow` flicker from 1.96 to 2.04.
STRETCH_LIMIT = 3.0
STRETCH_FROM = ("vectors",)  # the modes whose motion is exact enough to measure a stretch


def undeformed(like: torch.Tensor) -> torch.Tensor:
    """The identity deformation [1, 4, H, W] (a 2x2 map per pixel, row by row)."""
    identity = torch.tensor([1.0, 0.0, 0.0, 1.0], device=like.device, dtype=like.dtype).view(1, 4, 1, 1)
    return identity.expand(1, 4, *like.shape[-2:]).contiguous()


def motion_jacobian(flow: torch.Tensor) -> torch.Tensor:
    """Per pixel, how a small patch of this frame maps onto the frame before
    (the derivatives of x + flow(x)) [1, 4, H, W]. Derivatives beyond ±0.3
    are motion edges, where the pattern is not carried anyway: limited."""
    d_dy, d_dx = torch.gradient(flow, dim=(2, 3))
    derivatives = torch.cat([d_dx[:, 0:1], d_dy[:, 0:1], d_dx[:, 1:2], d_dy[:, 1:2]], dim=1)
    return derivatives.clamp(-0.3, 0.3) + undeformed(flow)


def deformed(previous: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The deformation of the pattern carried along ``flow``: the carried
    one (warped into this frame) times this frame's motion."""
    p, q, r, s = previous.unbind(dim=1)
    a, b, c, d = motion_jacobian(flow).unbind(dim=1)
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


def stretched(deformation: torch.Tensor, limit: float = STRETCH_LIMIT) -> torch.Tensor:
    """Where the carried pattern is stretched past ``limit``: dreamed afresh (soft-edged)."""
    return gaussian_blur((stretch(deformation) > limit).to(deformation.dtype))


def next_deformation(prepared: Prepared) -> Optional[torch.Tensor]:
    """The deformation the next frame carries on: this frame's where the
    pattern was carried, none where it was dreamed afresh."""
    if prepared.deformation is None:
        return None
    return carried_or_fresh(prepared.confidence, prepared.deformation, undeformed(prepared.deformation))


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


def carry_detail(detail: torch.Tensor, fine_detail: Optional[torch.Tensor], flow: torch.Tensor,
                 supersampled: bool) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The previous dream's detail moved along ``flow``: at this frame's size,
    and (``supersampled``) at twice it, from ``fine_detail`` where the chain
    has one. Without motion (``blend``) nothing is resampled: no need."""
    if not supersampled:
        return detail, None
    fine = fine_detail if fine_detail is not None else shrinking_to(detail, supersample(detail))
    double_flow = 2 * F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=False)
    carried_fine, _ = warp(fine, double_flow)
    return F.avg_pool2d(carried_fine, 2), carried_fine


def next_fine_detail(prepared: Prepared, dream: torch.Tensor, source: torch.Tensor) -> Optional[torch.Tensor]:
    """The detail the next frame carries, at twice the size: what this frame
    carried, as it was carried, plus this frame's own change, upsampled once
    (None where nothing moves: ``none`` and ``blend``)."""
    if prepared.mode in ("none", "blend"):
        return None
    detail = dream - source
    if prepared.carried_fine is None:  # the chain's first frame
        return shrinking_to(detail, supersample(detail))
    share = F.interpolate(prepared.confidence, scale_factor=2, mode="bilinear", align_corners=False)
    return shrinking_to(detail, share * prepared.carried_fine +
                        supersample(detail - prepared.confidence * prepared.carried))


def shrinking_to(detail: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """``fine`` corrected so that its 2x2 means are ``detail`` exactly: where
    the scene stands still the next frame starts from this very dream (a
    round trip that softened it would be regrown, frame after frame: flicker;
    measured on the fast occluder, 3.08 against 2.02 with this)."""
    return fine + F.interpolate(detail - F.avg_pool2d(fine, 2), scale_factor=2, mode="nearest")


def next_reference(prepared: Prepared, dream: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The pattern energy the next frame holds this frame's carried detail
    to: the carried reference where the motion was followed (see
    next_anchor), the new dream's own where new content came into view."""
    return carried_or_fresh(prepared.tracked, prepared.reference, pattern_energy(dream - source))


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
