"""Temporal coherence for animations: carry the previous frame's dream into
the next frame along the motion, so patterns move with the scene instead of
boiling.

Motion comes from Blender's Vector pass when the frames have one (exact),
from optical flow between consecutive renders otherwise (OpenCV's DIS), or
not at all (``blend``: a plain mix, for material without motion). Where the
motion is unreliable (pixels revealed by moving objects, pixels entering the
frame, a warp that disagrees with the new render) a soft mask hands the
pixel back to the fresh render.

All arrays here are dream-space sRGB, H×W×3 float32 in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

MODES = ("none", "blend", "flow", "vectors", "auto")


def vectors_to_flow(vectors: np.ndarray) -> np.ndarray:
    """Blender's Vector pass (X, Y towards the previous frame, in pixels,
    Y pointing up) as a backward flow in image coordinates (rows down):
    pixel (x, y) of frame N was at (x + flow_x, y + flow_y) in frame N-1."""
    return np.stack([vectors[..., 0], -vectors[..., 1]], axis=-1).astype(np.float32)


def next_flow_from_vectors(vectors: np.ndarray) -> np.ndarray:
    """Forward flow of a frame (where its pixels go in the next frame) from
    Vector.Z/W, which Blender stores with the opposite sign of X/Y."""
    return np.stack([-vectors[..., 2], vectors[..., 3]], axis=-1).astype(np.float32)


def _grey(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32), 0, 1) * 255).astype(np.uint8)


def estimate_flow(from_rgb: np.ndarray, to_rgb: np.ndarray) -> np.ndarray:
    """Dense flow f with to(x) ≈ from(x + f(x)) (DIS, offline, fast)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_grey(to_rgb), _grey(from_rgb), None)


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward warp: out(x) = image(x + flow(x)); also the mask of samples
    that came from inside the frame."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = ((map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)).astype(np.float32)
    return out, inside


def consistency(backward: np.ndarray, forward_prev: np.ndarray, tolerance: float = 0.5) -> np.ndarray:
    """Soft forward/backward check: following the backward flow, then the
    previous frame's forward flow, should come home."""
    there, _ = warp(forward_prev, backward)
    error = np.linalg.norm(backward + there, axis=-1)
    scale = tolerance + 0.05 * (np.linalg.norm(backward, axis=-1) + np.linalg.norm(there, axis=-1))
    return np.exp(-((error / scale) ** 2)).astype(np.float32)


def reliability(warped_source: np.ndarray, source: np.ndarray, sigma: float = 0.06) -> np.ndarray:
    """Soft mask from the warp error against the current render: a revealed
    background does not look like the foreground the warp put there."""
    error = np.abs(warped_source - source).max(axis=-1)
    mask = np.exp(-((error / sigma) ** 2)).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), 1.0)  # soft edges, no hard seams


@dataclass
class Previous:
    """What one frame leaves for the next."""

    source: np.ndarray
    dream: np.ndarray
    vectors: Optional[np.ndarray] = None
    anchor: Optional[tuple[float, float]] = None  # see anchor_colours


def brightness_saturation(rgb: np.ndarray) -> tuple[float, float]:
    """Mean luma and mean per-pixel channel spread (a saturation measure that
    scales exactly with the chroma)."""
    luma = float((rgb @ np.array([0.299, 0.587, 0.114], np.float32)).mean())
    return luma, float((rgb.max(-1) - rgb.min(-1)).mean())


def colour_gains(dream: np.ndarray, source: np.ndarray) -> tuple[float, float]:
    """How much a dream raised brightness and saturation over its render."""
    (dl, ds), (sl, ss) = brightness_saturation(dream), brightness_saturation(source)
    return dl / max(sl, 1e-6), ds / max(ss, 1e-6)


def anchor_colours(dream: np.ndarray, source: np.ndarray, anchor: tuple[float, float],
                   limit: float = 0.1) -> np.ndarray:
    """Holds a coherent sequence to the colour gains of its first frame.

    Carried dreams pass through a resampling every frame, and small colour
    shifts would add up over a long shot (flow-based peers get brighter
    every frame). The first frame is dreamed on its own; later frames get
    their brightness and saturation gains over their render pulled back to
    its gains, by at most ``limit`` per frame so nothing pops."""
    (dl, ds), (sl, ss) = brightness_saturation(dream), brightness_saturation(source)
    luma = (dream @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    chroma_scale = np.clip(anchor[1] * ss / max(ds, 1e-6), 1 - limit, 1 + limit)
    shift = np.clip(anchor[0] * sl - dl, -limit * dl, limit * dl)
    return np.clip(luma + shift + chroma_scale * (dream - luma), 0.0, 1.0).astype(np.float32)


@dataclass
class Prepared:
    base: np.ndarray  # the image to dream
    strength: Optional[np.ndarray]  # per-pixel step scale, or None for full strength
    confidence: Optional[np.ndarray]  # where the previous dream was carried over
    mode: str


def resolve_mode(mode: str, vectors: Optional[np.ndarray]) -> str:
    if mode not in MODES:
        raise ValueError(f"temporal mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        return "vectors" if vectors is not None else "flow"
    if mode == "vectors" and vectors is None:
        raise ValueError("temporal mode 'vectors' needs the Vector pass (multilayer EXR from Blender); "
                         "use 'flow' or 'auto'")
    return mode


def prepare(mode: str, source: np.ndarray, vectors: Optional[np.ndarray], previous: Optional[Previous],
            blend: float = 0.5, damping: float = 0.02) -> Prepared:
    """The image to dream for this frame and where to damp the ascent.

    With motion, the previous dream's *detail* (dream minus its render) is
    moved into this frame and added to this render where reliable; the
    ascent step there is damped (×``damping``) so the carried pattern is
    refined rather than regrown. Elsewhere the frame is dreamed afresh."""
    mode = resolve_mode(mode, vectors)
    if mode == "none" or previous is None or previous.source.shape != source.shape:
        return Prepared(source, None, None, mode)
    if mode == "blend":
        return Prepared((1 - blend) * source + blend * previous.dream, None, None, mode)
    if mode == "vectors":
        flow = vectors_to_flow(vectors)
        forward = next_flow_from_vectors(previous.vectors) if previous.vectors is not None else None
    else:
        flow, forward = estimate_flow(previous.source, source), None
    warped_source, inside = warp(previous.source, flow)
    warped_detail, _ = warp(previous.dream - previous.source, flow)
    confidence = inside * reliability(warped_source, source)
    if forward is not None:
        confidence *= consistency(flow, forward)
    c = confidence[..., None]
    base = np.clip(source + c * warped_detail, 0.0, 1.0)
    strength = (1.0 - confidence) + confidence * damping
    return Prepared(base.astype(np.float32), strength.astype(np.float32), confidence, mode)


def flicker(dreams: list[np.ndarray], flows: list[np.ndarray], masks: list[np.ndarray]) -> float:
    """Mean |dream N − warp(dream N−1)| over valid pixels, averaged over frames.
    ``flows[i]``/``masks[i]`` take frame i into frame i+1."""
    values = []
    for prev, cur, flow, mask in zip(dreams, dreams[1:], flows, masks):
        warped, inside = warp(prev, flow)
        valid = (mask * inside) > 0.5
        if valid.any():
            values.append(float(np.abs(cur - warped)[valid].mean()))
    return float(np.mean(values)) if values else 0.0
