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
from .tuning import TUNING, Tuning
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


# Renders are smoothed before the flow is estimated (Tuning.flow_smoothing), and
# large frames estimated at a lower resolution (flow_full_size_up_to,
# flow_scale): the measurements that chose them are beside them in tuning.py.


def flow_scale(height: int, width: int, tuning: Tuning = TUNING) -> float:
    """The scale DIS runs at for a frame of this size: 1 up to ``tuning.flow_full_size_up_to`` pixels."""
    return 1.0 if height * width <= tuning.flow_full_size_up_to else tuning.flow_scale


def _scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(1, round(height * scale)), max(1, round(width * scale))


def _flow_input(rgb: torch.Tensor, scale: float, smoothing: float) -> np.ndarray:
    """The smoothed 8-bit grey image DIS reads (Gaussian sigma ``smoothing``,
    px); at a ``scale`` below 1 averaged down on the frame's device first
    (less to copy to the CPU), and smoothed by the same sigma in the frame's
    pixels."""
    if scale == 1.0:
        return cv2.GaussianBlur(_grey8(rgb), (0, 0), smoothing)
    grey = F.interpolate(luma(rgb), size=_scaled_size(*rgb.shape[-2:], scale), mode="area")
    grey8 = (grey[0, 0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
    return cv2.GaussianBlur(grey8, (0, 0), smoothing * scale)


def estimate_flow(from_rgb: torch.Tensor, to_rgb: torch.Tensor, scale: Optional[float] = None,
                  preset: Optional[int] = None, tuning: Tuning = TUNING) -> torch.Tensor:
    """Dense flow f with to(x) ≈ from(x + f(x)) (DIS, offline, fast; on the
    CPU), estimated on smoothed renders (``tuning.flow_smoothing``), on large
    frames at a lower resolution (``scale``, by default flow_scale's) and
    resized back, in the frame's pixels, on the frame's device. ``preset``:
    DIS's, by default ``tuning.flow_preset``."""
    height, width = to_rgb.shape[-2:]
    scale = flow_scale(height, width, tuning) if scale is None else scale
    dis = cv2.DISOpticalFlow_create(tuning.flow_preset if preset is None else preset)
    smoothing = tuning.flow_smoothing
    flow = dis.calc(_flow_input(to_rgb, scale, smoothing), _flow_input(from_rgb, scale, smoothing), None)
    flow = torch.from_numpy(flow).permute(2, 0, 1)[None].to(to_rgb.device)
    if flow.shape[-2:] == (height, width):
        return flow
    gain = torch.tensor([width / flow.shape[-1], height / flow.shape[-2]], device=flow.device).view(1, 2, 1, 1)
    return F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False) * gain


def _norm(flow: torch.Tensor) -> torch.Tensor:
    return flow.square().sum(dim=1, keepdim=True).sqrt()


def consistency(backward: torch.Tensor, forward_prev: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """Soft forward/backward check: following the backward flow, then the
    previous frame's forward flow, should come home."""
    there, _ = warp(forward_prev, backward)
    return agreement(backward, there, tuning)


def agreement(backward: torch.Tensor, there: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """:func:`consistency` from the previous frame's forward flow already
    warped along ``backward`` (``there``): a frame warps it together with
    everything else it carries. The mismatch is judged against
    ``tuning.agreement_tolerance`` px plus ``agreement_motion_share`` of the motions."""
    error = _norm(backward + there)
    scale = tuning.agreement_tolerance + tuning.agreement_motion_share * (_norm(backward) + _norm(there))
    return torch.exp(-((error / scale) ** 2))


def reliability(warped_source: torch.Tensor, source: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """Soft mask from the warp error against the current render
    (``tuning.reliability_sigma``): a revealed background does not look like
    the foreground the warp put there. Both are smoothed first: a path
    tracer's noise differs from frame to frame and is no sign of a bad warp."""
    smooth = gaussian_blur(warped_source - source, tuning.reliability_noise_blur)
    error = smooth.abs().amax(dim=1, keepdim=True)
    trusted = torch.exp(-((error / tuning.reliability_sigma) ** 2))
    return gaussian_blur(trusted, tuning.reliability_edge_blur)  # soft edges, no hard seams


def new_noise_share(warped_source: torch.Tensor, source: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """Per pixel [1, 1, H, W], how much of a path tracer's noise under a
    carried pattern is new: the local rms of the render's change finer than
    ``tuning.reliability_noise_blur`` (the previous render, moved, against
    this one), over ``tuning.lift_noise``, at most 1. A denoised render
    reads about none, a 4-sample one about all."""
    change = warped_source - source
    fine = change - gaussian_blur(change, tuning.reliability_noise_blur)
    rms = gaussian_blur(fine.square().mean(dim=1, keepdim=True), tuning.energy_smoothing).sqrt()
    return (rms / tuning.lift_noise).clamp(max=1.0)


def carried_share(confidence: torch.Tensor, tuning: Tuning = TUNING) -> torch.Tensor:
    """How much of the carried pattern a pixel keeps: all of it where the
    motion is trusted, none where it is not, a short soft ramp between
    (``tuning.share_start``, ``share_ramp``). (A share that follows the
    confidence itself would shrink the pattern by that factor every frame:
    after a few dozen frames, only blobs are left.)"""
    t = ((confidence - tuning.share_start) / tuning.share_ramp).clamp(0.0, 1.0)
    return t * t * (3 - 2 * t)


def carried_or_fresh(confidence: Optional[torch.Tensor], carried: Optional[torch.Tensor],
                     fresh: torch.Tensor) -> torch.Tensor:
    """Per pixel, what was carried by the carried share and what is fresh by the rest."""
    if confidence is None or carried is None:
        return fresh
    return confidence * carried + (1.0 - confidence) * fresh
