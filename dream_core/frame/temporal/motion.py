"""Where each pixel of a frame was in the frame before, and how far to trust
it: the renderer's Vector pass (exact), optical flow between renders
(OpenCV's DIS) otherwise, checked against the new render and, with vectors,
against the previous frame's forward motion."""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch

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
FLOW_SMOOTHING = 3.0  # px, Gaussian sigma


def _flow_input(rgb: torch.Tensor) -> np.ndarray:
    return cv2.GaussianBlur(_grey8(rgb), (0, 0), FLOW_SMOOTHING)


def estimate_flow(from_rgb: torch.Tensor, to_rgb: torch.Tensor) -> torch.Tensor:
    """Dense flow f with to(x) ≈ from(x + f(x)) (DIS, offline, fast; on the
    CPU), estimated on smoothed renders (see FLOW_SMOOTHING)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(_flow_input(to_rgb), _flow_input(from_rgb), None)
    return torch.from_numpy(flow).permute(2, 0, 1)[None].to(to_rgb.device)


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
