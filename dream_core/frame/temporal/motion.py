"""Where each pixel of a frame was in the frame before, and how far to trust
it: the renderer's Vector pass (exact), optical flow between renders
(OpenCV's DIS) otherwise, checked against the new render and, with vectors,
against the previous frame's forward motion."""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..colour import luma
from .blur import gaussian_blur
from .warping import warp


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
FLOW_SMOOTHING = 3.0  # px of the frame, Gaussian sigma

FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
# DIS's time follows its input's pixels (about 90 ms at 1920x1080 on 16
# cores: most of what `flow` costs beyond `vectors`), so on frames above
# FLOW_FULL_SIZE_UP_TO pixels it reads the grey image averaged down to
# FLOW_SCALE and its flow is resized back. Chosen with
# benchmarks/flow_accuracy.py (docs/BENCHMARKS.md, "Optical flow at half
# size"): on the pan (tuning set) half size was no less accurate than full
# size, mean end-point error against the Vector pass 2.41 px against 2.49 at
# 512x288 and 4.93 against 5.12 at 960x540, and on the held-out dolly 0.61
# against 0.72, in 0.4x the time at 1920x1080 (175 -> 66 ms on 2 cores); a
# quarter size, or the fast preset at half size, lost accuracy on the pan
# (2.61, 2.69). Frames up to about 480x270 keep full
# size: half of them would be smaller than the smallest half size measured
# (256x144, which is also the size the temporal constants were tuned at).
FLOW_FULL_SIZE_UP_TO = 480 * 270  # pixels
FLOW_SCALE = 0.5


def flow_scale(height: int, width: int) -> float:
    """The scale DIS runs at for a frame of this size: 1 up to FLOW_FULL_SIZE_UP_TO pixels."""
    return 1.0 if height * width <= FLOW_FULL_SIZE_UP_TO else FLOW_SCALE


def _scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(1, round(height * scale)), max(1, round(width * scale))


def _flow_input(rgb: torch.Tensor, scale: float = 1.0) -> np.ndarray:
    """The smoothed 8-bit grey image DIS reads; at a ``scale`` below 1
    averaged down on the frame's device first (less to copy to the CPU), and
    smoothed by the same sigma in the frame's pixels."""
    if scale == 1.0:
        return cv2.GaussianBlur(_grey8(rgb), (0, 0), FLOW_SMOOTHING)
    grey = F.interpolate(luma(rgb), size=_scaled_size(*rgb.shape[-2:], scale), mode="area")
    grey8 = (grey[0, 0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
    return cv2.GaussianBlur(grey8, (0, 0), FLOW_SMOOTHING * scale)


def estimate_flow(from_rgb: torch.Tensor, to_rgb: torch.Tensor, scale: Optional[float] = None,
                  preset: int = FLOW_PRESET) -> torch.Tensor:
    """Dense flow f with to(x) ≈ from(x + f(x)) (DIS, offline, fast; on the
    CPU), estimated on smoothed renders (see FLOW_SMOOTHING), on large
    frames at a lower resolution (``scale``, by default flow_scale's) and
    resized back, in the frame's pixels, on the frame's device."""
    height, width = to_rgb.shape[-2:]
    scale = flow_scale(height, width) if scale is None else scale
    dis = cv2.DISOpticalFlow_create(preset)
    flow = dis.calc(_flow_input(to_rgb, scale), _flow_input(from_rgb, scale), None)
    flow = torch.from_numpy(flow).permute(2, 0, 1)[None].to(to_rgb.device)
    if flow.shape[-2:] == (height, width):
        return flow
    gain = torch.tensor([width / flow.shape[-1], height / flow.shape[-2]], device=flow.device).view(1, 2, 1, 1)
    return F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False) * gain


def _norm(flow: torch.Tensor) -> torch.Tensor:
    return flow.square().sum(dim=1, keepdim=True).sqrt()


def consistency(backward: torch.Tensor, forward_prev: torch.Tensor, tolerance: float = 0.5) -> torch.Tensor:
    """Soft forward/backward check: following the backward flow, then the
    previous frame's forward flow, should come home."""
    there, _ = warp(forward_prev, backward)
    return agreement(backward, there, tolerance)


def agreement(backward: torch.Tensor, there: torch.Tensor, tolerance: float = 0.5) -> torch.Tensor:
    """:func:`consistency` from the previous frame's forward flow already
    warped along ``backward`` (``there``): a frame warps it together with
    everything else it carries."""
    error = _norm(backward + there)
    scale = tolerance + 0.05 * (_norm(backward) + _norm(there))
    return torch.exp(-((error / scale) ** 2))


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


def carried_or_fresh(confidence: Optional[torch.Tensor], carried: Optional[torch.Tensor],
                     fresh: torch.Tensor) -> torch.Tensor:
    """Per pixel, what was carried by the carried share and what is fresh by the rest."""
    if confidence is None or carried is None:
        return fresh
    return confidence * carried + (1.0 - confidence) * fresh
