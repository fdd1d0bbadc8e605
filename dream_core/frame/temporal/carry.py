"""One frame's carry: what the frame before leaves (:class:`Previous`) and
what this frame dreams from it (:func:`prepare`: the image to dream, and how
hard the ascent may change each pixel)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ...config import TEMPORAL_MODES
from ...errors import BadSetting
from .deformation import STRETCH_FROM, deformed, stretched, undeformed
from .fine_detail import carry_detail, shrinking_to, supersample
from .motion import agreement, carried_share, estimate_flow, next_flow_from_vectors, reliability, vectors_to_flow
from .regrowth import REGROWTH, detail_energy, regrowth_share
from .warping import warp


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
    amplitude, both energies measured on the detail at twice the size, see
    fine_pattern_energy): sharp after a hundred frames, and nothing piles up
    in a slow shot. With the Vector pass, a pattern the motion has stretched past
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
    fine = previous_fine_detail(previous, mode)
    # one warp for the previous render (to judge the warp), its forward motion (to check
    # this frame's) and what the pattern carries with it
    with_pattern = {"source": previous.source,
                    "reference": previous.reference if previous.reference is not None else detail_energy(detail, fine)}
    if forward is not None:
        with_pattern["forward"] = forward
    if previous.anchor is not None:
        with_pattern["anchor"] = previous.anchor
    if mode in STRETCH_FROM:
        with_pattern["deformation"] = previous.deformation if previous.deformation is not None else undeformed(source)
    warped_all, inside = warp(torch.cat(list(with_pattern.values()), dim=1), flow)
    warped = dict(zip(with_pattern, warped_all.split([t.shape[1] for t in with_pattern.values()], dim=1)))
    warped_detail, carried_fine = carry_detail(detail, fine, flow, mode)
    confidence = inside * reliability(warped["source"], source)
    if forward is not None:
        confidence = confidence * agreement(flow, warped["forward"])
    tracked = carried_share(confidence)
    deformation = deformed(warped["deformation"], flow) if "deformation" in warped else None
    confidence = tracked if deformation is None else tracked * (1.0 - stretched(deformation))
    base = (source + confidence * warped_detail).clamp(0.0, 1.0)
    step_mask = (1.0 - confidence) + confidence * damping
    missing = regrowth_share(warped["reference"], warped_detail, carried_fine)
    regrow = (damping + regrowth * previous.gain * missing).clamp(max=1.0)
    fine_step_mask = (1.0 - confidence) + confidence * regrow
    return Prepared(base, step_mask, confidence, mode, fine_step_mask, warped["reference"], warped_detail,
                    carried_fine, warped.get("anchor"), tracked, deformation)


def previous_fine_detail(previous: Previous, mode: str) -> Optional[torch.Tensor]:
    """The previous frame's detail at twice the size, made from its dream
    where the chain has none yet (its first frame, or a resume); None
    without motion (``blend``: nothing is resampled)."""
    if mode == "blend":
        return None
    if previous.fine_detail is not None:
        return previous.fine_detail
    detail = previous.dream - previous.source
    return shrinking_to(detail, supersample(detail))
