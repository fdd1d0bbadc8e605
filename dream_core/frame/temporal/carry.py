"""One sequence's carry from frame to frame: what the frame before leaves
(:class:`Previous`), what this frame dreams from it (:func:`prepare`: the
image to dream, and how hard the ascent may change each pixel), and
:class:`TemporalCarry`, which holds the one and makes the next from a
frame's dream (:meth:`~TemporalCarry.advance`). The modules below take and
give tensors; only this one knows both states."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ...config import TEMPORAL_MODES
from ...errors import BadSetting
from .anchor import anchor_colours, colour_anchor, next_anchor
from .deformation import deformed, next_deformation, stretched, undeformed
from .fine_detail import carry_detail, next_fine_detail, shrinking_to, supersample
from .motion import (
    agreement,
    carried_share,
    estimate_flow,
    new_noise_share,
    next_flow_from_vectors,
    reliability,
    vectors_to_flow,
)
from .regrowth import detail_energy, fine_band_change, next_reference, regrowth_gain, regrowth_share, strength_lift
from .tuning import TUNING, Tuning
from .warping import warp

MOVING = ("flow", "vectors")  # the modes that move the pattern along a motion (``blend`` keeps it in place)


@dataclass(kw_only=True)
class Previous:
    """What one frame leaves for the next (tensors on the dreaming device).
    Its field names are the carried state's (carried_state.py): renaming one
    changes that format."""

    source: torch.Tensor
    dream: torch.Tensor
    vectors: Optional[torch.Tensor] = None
    anchor: Optional[torch.Tensor] = None  # the colours of the pattern when fresh [1, 4, H, W], see colour_anchor
    reference: Optional[torch.Tensor] = None  # the pattern's energy when fresh [1, 1, H, W], see next_reference
    strength_limit: Optional[float] = None  # the most a carried dream may raise the objective, see regrowth_gain
    gain: float = 1.0  # the share of the full regrowth the next frame takes, see regrowth_gain
    lift: float = 0.0  # the share of a full step the next frame's finest octave adds, see strength_lift
    fine_detail: Optional[torch.Tensor] = None  # the dream's detail at twice the size, see next_fine_detail
    deformation: Optional[torch.Tensor] = None  # how far the carried pattern is stretched [1, 4, H, W], see stretch


@dataclass(kw_only=True)
class Prepared:
    """One frame's carry between :func:`prepare` and :meth:`TemporalCarry.advance`."""

    base: torch.Tensor  # the image to dream
    mode: str
    step_mask: Optional[torch.Tensor] = None  # per-pixel step scale, or None for full steps everywhere
    confidence: Optional[torch.Tensor] = None  # where the previous dream was carried over (its carried share)
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
            tuning: Tuning = TUNING) -> Prepared:
    """The image to dream for this frame and where to damp the ascent.

    With motion, the previous dream's detail (dream minus its render) is
    moved into this frame (carried at twice its size, see supersample) and
    added to this render where reliable; the ascent there is damped
    (×``tuning.damping``) so the carried pattern is refined rather than
    regrown. Resampling still softens the finest scale a little every frame,
    so the finest octave regrows, per pixel, what this frame's carry lost,
    measured against the pattern's energy when it was dreamed afresh
    (``tuning.regrowth`` × the previous frame's gain, see regrowth_gain, ×
    the missing share of its amplitude, both energies measured on the detail
    at twice the size, see fine_pattern_energy): sharp after a hundred
    frames, and nothing piles up in a slow shot. While the chain's dream is
    weaker than its floor (a noisy render, see strength_lift) the finest
    octave takes the previous frame's lift on top. In the modes of
    ``tuning.stretch_from`` (the Vector pass), a pattern the motion has
    stretched past ``tuning.stretch_limit`` is dreamed afresh (see
    stretched). ``blend`` carries without motion: the previous dream stays
    only where the render did not change."""
    mode = resolve_mode(mode, vectors)
    if mode == "none" or previous is None or previous.source.shape != source.shape:
        return Prepared(base=source, mode=mode)
    forward = None
    if mode == "blend":
        flow = torch.zeros_like(source[:, :2])
    elif mode == "vectors":
        flow = vectors_to_flow(vectors)
        forward = next_flow_from_vectors(previous.vectors) if previous.vectors is not None else None
    else:
        flow = estimate_flow(previous.source, source, tuning=tuning)
    detail = previous.dream - previous.source
    fine = previous_fine_detail(previous, mode)
    # one warp for the previous render (to judge the warp), its forward motion (to check
    # this frame's) and what the pattern carries with it
    reference = previous.reference if previous.reference is not None else detail_energy(detail, fine, tuning)
    with_pattern = {"source": previous.source, "reference": reference}
    if forward is not None:
        with_pattern["forward"] = forward
    if previous.anchor is not None:
        with_pattern["anchor"] = previous.anchor
    if mode in tuning.stretch_from:
        with_pattern["deformation"] = previous.deformation if previous.deformation is not None else undeformed(source)
    warped_all, inside = warp(torch.cat(list(with_pattern.values()), dim=1), flow)
    warped = dict(zip(with_pattern, warped_all.split([t.shape[1] for t in with_pattern.values()], dim=1)))
    warped_detail, carried_fine = carry_detail(detail, fine, flow, mode, tuning)
    confidence = inside * reliability(warped["source"], source, tuning)
    if forward is not None:
        confidence = confidence * agreement(flow, warped["forward"], tuning)
    tracked = carried_share(confidence, tuning)
    deformation = deformed(warped["deformation"], flow, tuning) if "deformation" in warped else None
    confidence = tracked if deformation is None else tracked * (1.0 - stretched(deformation, tuning))
    base = (source + confidence * warped_detail).clamp(0.0, 1.0)
    step_mask = (1.0 - confidence) + confidence * tuning.damping
    missing = regrowth_share(warped["reference"], warped_detail, carried_fine, tuning)
    # the lift (a weak dream on a noisy render, see strength_lift) reaches the finest octave only: the coarse
    # octaves' change over a carried pattern is dropped (fine_band_change), and the fine detail the finest
    # octave grows on that change fits no longer once it is gone
    regrow = (tuning.damping + lifted(previous.lift, warped["source"], source, tuning)
              + tuning.regrowth * previous.gain * missing).clamp(max=1.0)
    fine_step_mask = (1.0 - confidence) + confidence * regrow
    return Prepared(base=base, mode=mode, step_mask=step_mask, confidence=confidence, fine_step_mask=fine_step_mask,
                    reference=warped["reference"], carried=warped_detail, carried_fine=carried_fine,
                    anchor=warped.get("anchor"), tracked=tracked, deformation=deformation)


def lifted(lift: float, warped_source: torch.Tensor, source: torch.Tensor,
           tuning: Tuning = TUNING) -> float | torch.Tensor:
    """The lift per pixel: where the render's noise is new (see new_noise_share), or everywhere."""
    if lift == 0.0 or tuning.lift_noise == 0.0:
        return lift
    return lift * new_noise_share(warped_source, source, tuning)


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


class TemporalCarry:
    """What a sequence carries from frame to frame, and how the next frame's
    carry is made. Per frame: :meth:`prepare` (the image to dream and its
    steps), the dream, :meth:`settle` (the carried pattern's change kept to
    its finest scales, its colours held to those it had when fresh), then
    :meth:`advance` (what the next frame carries). ``previous`` is None before a chain's first frame; set it to
    carry on from a kept state, to None to start afresh. ``tuning``: the
    constants of every step (see tuning.py)."""

    def __init__(self, tuning: Tuning = TUNING, previous: Optional[Previous] = None) -> None:
        self.tuning = tuning
        self.previous = previous

    def __repr__(self) -> str:
        held = "nothing" if self.previous is None else "a {1}x{0} frame".format(*self.previous.source.shape[-2:])
        changes = self.tuning.changes()
        tuned = ", ".join(f"{name}={value!r}" for name, value in changes.items()) if changes else "TUNING"
        return f"TemporalCarry(holding {held}; {tuned})"

    def prepare(self, mode: str, source: torch.Tensor, vectors: Optional[torch.Tensor]) -> Prepared:
        """This frame's :func:`prepare` from what the frame before left."""
        return prepare(mode, source, vectors, self.previous, self.tuning)

    def settle(self, prepared: Prepared, dream: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """``dream`` (the engine's dream of ``prepared.base``) with the ascent's
        change over the carried pattern kept to its finest scales (see
        regrowth.fine_band_change), and the pattern held to the colours it
        had when it was dreamed afresh (see anchor.anchor_colours);
        unchanged where nothing was carried."""
        if prepared.confidence is not None:
            dream = fine_band_change(dream, prepared.base, prepared.confidence, self.tuning)
        if prepared.mode == "none" or prepared.anchor is None:
            return dream
        return anchor_colours(dream, source, prepared.anchor, carried=prepared.confidence, tuning=self.tuning)

    def advance(self, prepared: Prepared, dream: torch.Tensor, source: torch.Tensor,
                vectors: Optional[torch.Tensor], strength: Optional[float], *,
                anchored: Optional[torch.Tensor] = None) -> Previous:
        """Takes on what the next frame carries from this one: ``prepared``
        (this frame's :meth:`prepare`), its ``dream`` (what the sequence
        carries on, in dream space), its render ``source`` and ``vectors``,
        and the dream's ``strength`` (see dream_strength; None where it was
        not measured, or the objective is not positive). ``anchored``: the
        dream whose colours the next frame holds the pattern to, where that
        is not ``dream`` (the pipeline's is before the objects' strengths
        were laid over it). Returns the new :attr:`previous`."""
        mode, tuning = prepared.mode, self.tuning
        fine_detail = None
        if mode in MOVING:
            fine_detail = next_fine_detail(dream, source, prepared.carried, prepared.carried_fine, prepared.confidence)
        reference = anchor = None
        if mode != "none":
            reference = next_reference(dream, source, prepared.reference, prepared.tracked, fine_detail, tuning)
            anchor = next_anchor(dream if anchored is None else anchored, source, prepared.anchor, prepared.tracked)
        limit, gain, lift = self._governed(prepared, strength)
        self.previous = Previous(source=source, dream=dream, vectors=vectors, anchor=anchor, reference=reference,
                                 strength_limit=limit, gain=gain, lift=lift, fine_detail=fine_detail,
                                 deformation=next_deformation(prepared.deformation, prepared.confidence))
        return self.previous

    def _governed(self, prepared: Prepared, strength: Optional[float]) -> tuple[Optional[float], float, float]:
        """The strength limit, regrowth gain and lift the next frame carries:
        a frame dreamed afresh sets the limit (``tuning.strength_limit`` times
        its own strength); a carried one, or the first after a resume, is
        held to it, and lifted while it is weaker than the floor under it."""
        if prepared.mode == "none" or strength is None:
            return None, 1.0, 0.0
        if prepared.confidence is None:
            return self.tuning.strength_limit * strength, 1.0, 0.0
        limit = self.previous.strength_limit
        if limit is None:  # resumed from written frames: hold the chain where it was
            return strength, self.previous.gain, self.previous.lift
        return (limit, regrowth_gain(self.previous.gain, strength, limit, self.tuning),
                strength_lift(self.previous.lift, strength, limit, self.tuning))

    def resume(self, source: torch.Tensor, dream: torch.Tensor, vectors: Optional[torch.Tensor]) -> None:
        """Carries on from a frame rebuilt from its render and its written
        dream (dream space): the detail, the colours it is held to and
        nothing more (no fine detail, reference, deformation or strength
        limit: those start again)."""
        self.previous = Previous(source=source, dream=dream, vectors=vectors, anchor=colour_anchor(dream, source))
