"""Every tuned constant of temporal coherence, in one frozen table.

Each field says, in its metadata, what the number does (``why``) and what
chose it (``chosen_by``: a benchmark and the section of docs/BENCHMARKS.md
that records the measurement, or "not measured"). Every function that uses
one takes the :class:`Tuning` it is given (by default :data:`TUNING`), so a
benchmark can sweep a constant without touching the code::

    benchmarks/temporal.py --tune regrowth=1.0,stretch_limit=2.5

docs/TEMPORAL.md's tuning table lists every field, row for row as this file
has it (a test holds it to this file). The images the constants apply to are dream-space
sRGB in [0, 1]; sizes in px are of the frame being dreamed."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import cv2

NOT_MEASURED = "not measured"


def _tuned(default: Any, why: str, chosen_by: str = NOT_MEASURED) -> Any:
    return field(default=default, metadata={"why": why, "chosen_by": chosen_by})


@dataclass(frozen=True)
class Tuning:
    """The constants of the carry (see the module's docstring); ``replace(TUNING, name=value)`` for another set."""

    # ---- the carry and the regrowth (carry.prepare, regrowth.py) ----
    # With no step at all over the carried pixels (damping 0) the held-out turntable flickered as much
    # (docs/BENCHMARKS.md, "Held-out shots and the carried pattern's boil"): a diagnostic, not a choice.
    damping: float = _tuned(
        0.01, "the coarse octaves' step over a carried pattern, a share of a full step: refined, not grown again")
    # docs/BENCHMARKS.md, "What limits `flow`": R = 0, 0.5, 1.0 and 1.5 against strength, detail and flicker;
    # at 1.0 the orbit's 2x2 detail was 0.82 against 0.85 (1 left it soft). Since the ascent's change over a
    # carried pattern keeps only its finest band (coarse_change), 1.0 keeps the tuning set's 2x2 detail
    # (orbit 0.86 either way, pan 0.89 -> 0.87) and calms the push-in (pattern flicker 1.47 -> 1.41, full-size
    # detail 0.68 -> 0.65): docs/BENCHMARKS.md, "The flicker at the pattern's scale".
    regrowth: float = _tuned(
        1.0, "the finest octave's step over a carried pattern per unit of its missing fine amplitude (x the gain)",
        "benchmarks/temporal.py --set tuning --tune regrowth=1.0 (docs/BENCHMARKS.md, \"The flicker at the "
        "pattern's scale\")")
    # docs/BENCHMARKS.md, "Smoothed flow and a strength limit": only 1.2 and 1.3 were measured; 1.2 held the
    # orbit at strength 1.18 but left its pattern soft (detail 2x2 0.72 flow, 0.76 vectors).
    strength_limit: float = _tuned(
        1.3, "a carried dream's strength at most this times its chain's first frame's (see regrowth_gain)",
        "benchmarks/temporal.py (docs/BENCHMARKS.md, \"Smoothed flow and a strength limit\")")
    gain_rate: float = _tuned(
        4.0, "how fast the regrowth gain follows the strength: a frame 10% over its limit takes 0.4 off the next's")
    # A noisy render (4 samples, not denoised): the carried pattern was grown on the previous render's noise and
    # reads a fifth to a third weaker on this one's (docs/BENCHMARKS.md, "A noisy render under a carried
    # pattern"); nothing of its energy is missing, so the regrowth does not give it back. The floor lifts the
    # finest octave's step over the carried pattern while the dream is weak: grain's strength 0.88 -> 0.98,
    # pattern flicker 1.05 either way, 2x2 detail 0.97 -> 0.99 (docs/BENCHMARKS.md, "A strength floor under a
    # carried pattern"). Lifting the coarse octaves instead over-grew the fine pattern (2x2 detail 1.81).
    strength_floor: float = _tuned(
        0.95, "a carried dream weaker than this times its chain's first frame's lifts the finest octave's step "
        "over the carried pattern on the next frame (see strength_lift; 0: never)",
        "benchmarks/temporal.py --set tuning --tune strength_floor=0.95 (docs/BENCHMARKS.md, \"A strength floor "
        "under a carried pattern\")")
    # 0.5 was measured on grain and occluder only, with the lift on every carried pixel (before lift_noise):
    # grain as strong (0.98), the occluder no calmer (pattern 1.32 against 1.34 at 1.0).
    lift_rate: float = _tuned(
        1.0, "how fast that lift follows the shortfall: a frame 10% under the floor adds 0.1 of a full step",
        "benchmarks/temporal.py --shots grain,occluder --tune lift_rate=0.5 (docs/BENCHMARKS.md, \"A strength "
        "floor under a carried pattern\")")
    # 0.04 and 0.06 measured: the same on grain (strength 0.98), 0.06 a little nearer the shots without the floor
    # (orbit's 2x2 detail 0.85 against 0.84 and 0.86 with no floor); with no noise weighting (0) the occluder,
    # weaker than its first frame while it crosses the view, took the lift: flicker 1.37 -> 1.61, pattern 1.20
    # -> 1.34 (1.42 and 1.22 weighted).
    lift_noise: float = _tuned(
        0.06, "the local rms of the render's new noise (its change finer than reliability_noise_blur) at which a "
        "carried pixel takes the whole lift; less noise, a share of it (0: every carried pixel takes it all)",
        "benchmarks/temporal.py --set tuning --tune lift_noise=0.06 (docs/BENCHMARKS.md, \"A strength floor under a "
        "carried pattern\")")
    energy_band: float = _tuned(
        2.0, "px, Gaussian sigma: the pattern energy regrowth measures is the detail's scales finer than this (1-2 px)")
    energy_smoothing: float = _tuned(3.0, "px, Gaussian sigma that smooths the pattern energy into a local map")
    # docs/BENCHMARKS.md, "The flicker at the pattern's scale": the finest octave's regrowth is there to give
    # back the 1-2 px detail the carry lost, but its steps also move the carried pattern's coarser scales a
    # little every frame (a boil: on the push-in 1.62 times the renders' change at the pattern's scale, 1.47
    # with only the fine band kept, detail 2x2 0.91 -> 0.92; pan 1.16 -> 1.13, orbit 1.18 -> 1.14).
    coarse_change: float = _tuned(
        0.0, "the share of the ascent's change coarser than energy_band that a carried pattern takes (0: only its "
        "finest scales change, as the regrowth restores them)",
        "benchmarks/temporal.py --set tuning --tune coarse_change=0.0 (docs/BENCHMARKS.md, \"The flicker at the "
        "pattern's scale\")")

    # ---- how far the motion is trusted (motion.py) ----
    share_start: float = _tuned(
        0.25, "the confidence below which a pixel keeps none of the carried pattern (its carried share's smooth step)")
    share_ramp: float = _tuned(0.5, "the width of that smooth step: from share_start + share_ramp on, all of it")
    agreement_tolerance: float = _tuned(
        0.5, "px a pixel's backward motion and the previous frame's forward motion may disagree by (vectors only)")
    agreement_motion_share: float = _tuned(
        0.05, "plus this share of the two motions' lengths: fast motion may disagree by more")
    reliability_sigma: float = _tuned(
        0.06, "how far the warped previous render may differ from this render (largest channel): exp(-(e/sigma)^2)")
    reliability_noise_blur: float = _tuned(
        1.0, "px, Gaussian sigma that smooths that difference first: a path tracer's noise is no sign of a bad warp")
    reliability_edge_blur: float = _tuned(1.0, "px, Gaussian sigma that softens the reliability mask: no hard seams")

    # ---- the stretch refresh and the sharper carry (deformation.py, fine_detail.py) ----
    jacobian_limit: float = _tuned(
        0.3, "the motion's derivatives are limited to +-this: larger ones are motion edges, where nothing is carried")
    # 2.5 and 3 both end the orbit's stripes; 3 renews less and keeps more detail (orbit 0.86 against 0.84 of
    # independent frames'); 2 left 0.82.
    stretch_limit: float = _tuned(
        3.0, "a carried pattern stretched or squeezed past this in any direction is dreamed afresh",
        "benchmarks/temporal.py --shots orbit (docs/BENCHMARKS.md, \"A stretched pattern is dreamed afresh\")")
    stretch_edge_blur: float = _tuned(1.0, "px, Gaussian sigma that softens the edge of a stretch's fresh dream")
    # Optical flow's derivatives are too rough to measure a stretch (on the pan DIS reads a median 1.8x where
    # the vectors read 1.4x), and renewing on them took the pan's `flow` flicker from 1.96 to 2.04.
    stretch_from: tuple[str, ...] = _tuned(
        ("vectors",), "the modes whose motion is exact enough to measure a stretch",
        "benchmarks/temporal.py (docs/BENCHMARKS.md, \"A stretched pattern is dreamed afresh\")")
    # With the Vector pass the detail is resampled by the interpolating cubic B-spline (warp_sharp), which
    # keeps more of the finest pattern per move than Catmull-Rom. Measured (lite0, 256x144; vectors,
    # Catmull-Rom -> B-spline; last quarter, relative to independent frames): detail at full size pan 0.79
    # -> 0.85, orbit 0.77 -> 0.83 (2x2: 0.87 -> 0.91, 0.86 -> 0.89), strength 1.11 -> 1.07, 1.16 -> 1.10,
    # saturation -6.9% -> -5.3%, -7.9% -> -6.8%; flicker 1.13 -> 1.15, 1.16 -> 1.22 (occluder 1.46 -> 1.45).
    # Not with optical flow: there the sharper carry keeps the flow's errors sharp too (the pan's streaks,
    # x/y 0.75 -> 0.69; the orbit's flicker 1.94 -> 2.02).
    sharp_from: tuple[str, ...] = _tuned(
        ("vectors",), "the modes whose carried detail is resampled by the sharper B-spline, not Catmull-Rom",
        "benchmarks/temporal.py (docs/BENCHMARKS.md, \"The carried pattern resampled by the interpolating B-spline\")")

    # ---- the colour anchor (anchor.py) ----
    anchor_limit: float = _tuned(
        0.1, "the most the colour anchor changes a carried pattern's brightness or saturation a frame: nothing pops")

    # ---- optical flow (motion.estimate_flow) ----
    # Renders are smoothed before the flow is estimated: a path tracer's noise at low sample counts is per
    # pixel and, with a fixed seed (Cycles' default), stays on the screen, so on smooth surfaces the flow
    # follows the noise (0 px) instead of the surface. Measured on three Cycles shots at 16 samples (mean
    # error against the Vector pass, px): pan 1.39 -> 1.22, orbit 0.92 -> 0.66, fast occluder 4.05 -> 4.10;
    # sigma 2 and 4 were worse on the pan, 4 better on the orbit.
    flow_smoothing: float = _tuned(
        3.0, "px, Gaussian sigma: renders are smoothed before DIS, so the flow follows the surface, not the noise",
        "DIS's error against the Vector pass at sigma 2, 3, 4 (docs/BENCHMARKS.md, \"Smoothed flow and a strength "
        "limit\")")
    # DIS's time follows its input's pixels (about 90 ms at 1920x1080 on 16 cores: most of what `flow` costs
    # beyond `vectors`), so on frames above flow_full_size_up_to pixels it reads the grey image averaged down
    # to flow_scale and its flow is resized back. Chosen with benchmarks/flow_accuracy.py (docs/BENCHMARKS.md,
    # "Optical flow at half size"): on the pan (tuning set) half size was no less accurate than full size,
    # mean end-point error against the Vector pass 2.41 px against 2.49 at 512x288 and 4.93 against 5.12 at
    # 960x540, and on the held-out dolly 0.61 against 0.72, in 0.4x the time at 1920x1080 (175 -> 66 ms on 2
    # cores); a quarter size, or the fast preset at half size, lost accuracy on the pan (2.61, 2.69). Frames
    # up to about 480x270 keep full size: half of them would be smaller than the smallest half size measured
    # (256x144, which is also the size the temporal constants were tuned at).
    flow_full_size_up_to: int = _tuned(
        480 * 270, "pixels (480 x 270): frames up to this size estimate the flow at full size (half would be below any "
        "size measured)")
    flow_scale: float = _tuned(
        0.5, "the scale DIS runs at on larger frames, its flow resized back",
        "benchmarks/flow_accuracy.py (docs/BENCHMARKS.md, \"Optical flow at half size\")")
    flow_preset: int = _tuned(
        cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, "OpenCV DIS's preset (medium)",
        "benchmarks/flow_accuracy.py (docs/BENCHMARKS.md, \"Optical flow at half size\")")

    def with_overrides(self, spec: str) -> Tuning:
        """This table with ``spec``'s values: ``name=value[,name=value]``, each
        value read as its field's type (modes joined by ``+``: ``sharp_from=vectors+flow``,
        none: ``sharp_from=``)."""
        changes = {}
        types = {f.name: type(f.default) for f in dataclasses.fields(self)}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, equals, value = item.partition("=")
            name = name.strip()
            if not equals or name not in types:
                raise ValueError(f"{item!r}: not name=value for a field of Tuning ({', '.join(types)})")
            kind = types[name]
            changes[name] = tuple(filter(None, value.strip().split("+"))) if kind is tuple else kind(value)
        return dataclasses.replace(self, **changes)

    def changes(self, base: Tuning | None = None) -> dict[str, Any]:
        """The fields whose values differ from ``base``'s (by default :data:`TUNING`'s)."""
        base = TUNING if base is None else base
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(base, f.name)}


TUNING = Tuning()
