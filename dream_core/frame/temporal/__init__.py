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

The pieces, each in its own module:

- ``carry``: :class:`TemporalCarry` (a sequence's carry: :meth:`~TemporalCarry.prepare`,
  :meth:`~TemporalCarry.advance`), :class:`Previous` (what a frame leaves for the
  next) and :func:`prepare` (the image to dream and the ascent's per-pixel steps);
  the only module that knows both states: the others take and give tensors;
- ``tuning``: :class:`Tuning`, every tuned constant with why and what chose it
  (:data:`TUNING`; every function takes the table it is given);
- ``motion``: flows from vectors or renders, and how far to trust them;
- ``warping``: the Catmull-Rom warp every carried map goes through, and a sharper one for the pattern;
- ``fine_detail``: the carried detail at twice the size (resampling without loss);
- ``regrowth``: the finest octave regrows what the carry lost (measured at twice the size); the strength governor;
- ``deformation``: a pattern stretched too far by the motion is dreamed afresh;
- ``anchor``: a carried pattern keeps the colours it was dreamed with;
- ``blur`` and ``metrics`` (flicker at full detail and at the pattern's scale, the warping error: for
  benchmarks and tests).
"""
from .anchor import (
    anchor_colours,
    anchor_gains,
    brightness_saturation,
    colour_anchor,
    colour_stats,
    next_anchor,
    weighted_means,
)
from .blur import gaussian_blur
from .carry import Prepared, Previous, TemporalCarry, prepare, resolve_mode
from .deformation import (
    deformed,
    motion_jacobian,
    next_deformation,
    stretch,
    stretched,
    undeformed,
)
from .fine_detail import carry_detail, next_fine_detail, shrinking_to, supersample
from .metrics import flicker, moved_exactly, pattern_flicker, warp_error
from .motion import (
    agreement,
    carried_or_fresh,
    carried_share,
    consistency,
    estimate_flow,
    next_flow_from_vectors,
    reliability,
    vectors_to_flow,
)
from .regrowth import (
    detail_energy,
    dream_strength,
    fine_band_change,
    fine_pattern_energy,
    fine_scales,
    next_reference,
    pattern_energy,
    regrowth_gain,
    regrowth_share,
    strength_lift,
)
from .tuning import TUNING, Tuning
from .warping import catmull_rom, warp, warp_sharp

# The names the constants had before the tuning table: TUNING's values (a
# sweep passes its own Tuning down; these do not follow it).
REGROWTH = TUNING.regrowth
STRENGTH_LIMIT = TUNING.strength_limit
GAIN_RATE = TUNING.gain_rate
STRETCH_LIMIT = TUNING.stretch_limit
STRETCH_FROM = TUNING.stretch_from
SHARP_FROM = TUNING.sharp_from
FLOW_SMOOTHING = TUNING.flow_smoothing

__all__ = [
    "FLOW_SMOOTHING", "GAIN_RATE", "REGROWTH", "SHARP_FROM", "STRENGTH_LIMIT", "STRETCH_FROM", "STRETCH_LIMIT",
    "TUNING", "Prepared", "Previous", "TemporalCarry", "Tuning", "agreement", "anchor_colours", "anchor_gains",
    "brightness_saturation", "carried_or_fresh", "carried_share", "carry_detail", "catmull_rom", "colour_anchor",
    "colour_stats", "consistency", "deformed", "detail_energy", "dream_strength", "estimate_flow",
    "fine_band_change", "fine_pattern_energy", "fine_scales", "flicker", "gaussian_blur", "motion_jacobian",
    "moved_exactly", "next_anchor", "next_deformation", "next_fine_detail", "next_flow_from_vectors",
    "next_reference", "pattern_energy", "pattern_flicker", "prepare", "regrowth_gain", "regrowth_share",
    "reliability", "resolve_mode", "shrinking_to", "strength_lift", "stretch", "stretched", "supersample", "undeformed",
    "vectors_to_flow", "warp", "warp_error", "warp_sharp", "weighted_means",
]
