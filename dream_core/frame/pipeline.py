"""The one frame pipeline: every caller (``dream()``, the CLI's batches, the
server's worker) dreams a frame through here.

A frame goes to the dreamer's device once and comes back once: the colour
conversion into dream space (sRGB in [0, 1], highlights split off),
temporal coherence, the dream, the output mix and the way back all run there.

:class:`SequenceDreamer` holds what a sequence carries from frame to frame;
a single image is a sequence of one.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..config import DreamSettings, ProgressCallback
from ..engine import Dreamer, image_tensor, tensor_pixels
from ..engine.checks import check_finite, check_shape
from ..engine.dreamer import StepMask
from ..engine.objectives import Objective
from ..errors import ShapeMismatch
from ..io import Picture
from . import carried_state, crossfade, objects, temporal
from .carried_state import CarriedState
from .colour import compress_highlights, keep_source_colours, linear_to_srgb, luma, srgb_to_linear


@dataclass
class _Restore:
    """What undoes :func:`to_dream_space`."""

    source: torch.Tensor
    linear: bool
    ratio: Optional[torch.Tensor]


def to_dream_space(pixels: torch.Tensor, linear: bool) -> tuple[torch.Tensor, _Restore]:
    """Pixels [1, C, H, W] (C = 1…4) to sRGB [1, 3, H, W] in [0, 1], plus what undoes it."""
    check_shape(pixels, ["1", "1|2|3|4", "H", "W"], "pixels")
    check_finite(pixels)
    colour = pixels[:, :3] if pixels.shape[1] >= 3 else pixels[:, :1].expand(-1, 3, -1, -1)
    ratio = None
    if linear:
        colour, ratio = compress_highlights(colour)
        colour = linear_to_srgb(colour)
    return colour.clamp(0.0, 1.0), _Restore(pixels, linear, ratio)


def from_dream_space(rgb: torch.Tensor, restore: _Restore) -> torch.Tensor:
    if restore.linear:
        rgb = srgb_to_linear(rgb) * restore.ratio
    colour = rgb if restore.source.shape[1] >= 3 else luma(rgb)
    return torch.cat([colour, restore.source[:, colour.shape[1]:]], dim=1)


def alpha_mask(pixels: np.ndarray) -> Optional[np.ndarray]:
    """The alpha channel as a per-pixel mask, or None without alpha."""
    return pixels[..., -1].clip(0, 1) if pixels.shape[-1] in (2, 4) else None


def mask_tensor(mask: Optional[np.ndarray], like: torch.Tensor) -> Optional[torch.Tensor]:
    """A H×W mask in [0, 1] as [1, 1, H, W] beside ``like``, its size checked."""
    if mask is None:
        return None
    if mask.shape != like.shape[-2:]:
        raise ShapeMismatch(f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {like.shape[-1]}x{like.shape[-2]}")
    return image_tensor(mask[..., None], like.device)


def temporal_steps(prepared: temporal.Prepared) -> StepMask:
    """The coarse octaves take the carried pattern's damping; the finest its own (regrowth)."""
    coarse, fine = prepared.step_mask, prepared.fine_step_mask
    if fine is None:
        return coarse
    return lambda remaining: coarse if remaining > 0 else fine


def combined_steps(*masks: StepMask) -> StepMask:
    """The product of step masks, any of which may differ by octave."""
    masks = tuple(m for m in masks if m is not None)
    if not any(callable(m) for m in masks):
        return functools.reduce(_combined, masks, None)
    return lambda remaining: functools.reduce(
        _combined, [m(remaining) if callable(m) else m for m in masks], None)


@dataclass
class Dreaming:
    """A frame between :meth:`SequenceDreamer.prepare` and
    :meth:`~SequenceDreamer.finish`: what the engine dreams (``base``, its
    ``steps`` and ``objective``) and what the output is made of after."""

    picture: Picture
    frame: Optional[int]
    objective: Objective
    rgb: torch.Tensor
    restore: _Restore
    share: Optional[torch.Tensor]
    vectors: Optional[torch.Tensor]
    prepared: temporal.Prepared
    steps: StepMask

    @property
    def base(self) -> torch.Tensor:
        return self.prepared.base


class SequenceDreamer:
    """Dreams the frames of one sequence in order, carrying each frame's
    dream into the next under ``settings.temporal`` (``carry``, made with
    ``tuning``). Frames may change settings (keyframes); a frame that does
    not follow the last one (its number is not the next) starts the motion
    afresh."""

    def __init__(self, tuning: temporal.Tuning = temporal.TUNING) -> None:
        self.carry = temporal.TemporalCarry(tuning)
        self.last_frame: Optional[int] = None
        self._objective: tuple[tuple, Optional[Objective]] = ((), None)

    @property
    def previous(self) -> Optional[temporal.Previous]:
        """What the next frame carries (None before the first frame): ``carry.previous``."""
        return self.carry.previous

    def resume(self, dreamer: Dreamer, render: Picture, dreamed: Picture) -> None:
        """Carries on from the frame before, rebuilt from its render and its
        written dream when a resumed run or a restarted server lost it. The
        written dream is what gets carried: with a mix below 1 its detail is
        that much weaker."""
        source, _ = to_dream_space(image_tensor(render.pixels, dreamer.device), render.linear)
        dream_rgb_, _ = to_dream_space(image_tensor(dreamed.pixels, dreamer.device), dreamed.linear)
        if dream_rgb_.shape != source.shape:
            raise ShapeMismatch(f"the previous dream is {dreamed.width}x{dreamed.height}, its render "
                                f"{render.width}x{render.height}")
        vectors = None if render.vectors is None else image_tensor(render.vectors, dreamer.device)
        self.carry.resume(source, dream_rgb_, vectors)
        self.last_frame = None

    def restore(self, state: "CarriedState", device: torch.device) -> None:
        """Carries on exactly where the sequence that left ``state`` stopped
        (see :mod:`.carried_state`)."""
        self.carry.previous = state.previous(device)
        self.last_frame = state.last_frame

    def state(self) -> Optional[bytes]:
        """What the next frame carries, as bytes (None before the first frame)."""
        return None if self.previous is None else carried_state.encode(self.previous, self.last_frame)

    def needs_resume(self, frame: Optional[int]) -> bool:
        """Whether this frame would start without a previous one to carry."""
        return self.previous is None or not follows(self.last_frame, frame)

    def objective(self, dreamer: Dreamer, settings: DreamSettings, guide: Optional[np.ndarray]) -> Objective:
        """The frame's objective, reused while the layer, channels and guide
        stay the same (a guide's features cost a forward pass)."""
        layer = settings.layer_for(dreamer.info.layers)
        guide_key = None if guide is None else hashlib.sha1(np.ascontiguousarray(guide).tobytes()).hexdigest()
        key = (dreamer.info.name, dreamer.serial, layer, tuple(settings.channels or ()), guide_key)
        if self._objective[0] != key:
            self._objective = (key, dreamer.objective(layer, settings.channels, guide))
        return self._objective[1]

    def dream(self, dreamer: Dreamer, picture: Picture, settings: DreamSettings, *, frame: Optional[int] = None,
              mask: Optional[np.ndarray] = None, guide: Optional[np.ndarray] = None,
              callback: Optional[ProgressCallback] = None, blend: Optional[tuple[Picture, float]] = None) -> Picture:
        """Dreams one frame. ``mask`` (H×W in [0, 1]) scales the ascent per
        pixel; without one, ``settings.mask == "alpha"`` takes the alpha.
        ``settings.objects`` dreams each object by its strength (the frame's
        Cryptomatte pass); an object at 0 comes out exactly as rendered.
        ``settings.mix`` fades the output between the render (0) and the
        dream (1); the next frame still carries the full dream, so a
        keyframed fade does not wash out the coherence. ``blend``: a seam's
        frame (the chunk after's output of it, and its share): the output is
        the two cross-faded (see crossfade.py), while the sequence carries
        this chain's own dream on."""
        dreaming = self.prepare(dreamer, picture, settings, frame=frame, mask=mask, guide=guide)
        dreamed = dreamer.run(dreaming.base, dreaming.objective, settings.config, step_mask=dreaming.steps,
                              callback=callback)
        return self.finish(dreamer, dreaming, dreamed, settings, blend=blend)

    def prepare(self, dreamer: Dreamer, picture: Picture, settings: DreamSettings, *, frame: Optional[int] = None,
                mask: Optional[np.ndarray] = None, guide: Optional[np.ndarray] = None) -> "Dreaming":
        """What the engine needs to dream the frame (see :meth:`dream`); :meth:`finish` takes its dream."""
        objective = self.objective(dreamer, settings, guide)
        if not follows(self.last_frame, frame):
            self.carry.previous = None
        if mask is None and settings.mask == "alpha":
            mask = alpha_mask(picture.pixels)
        rgb, restore = to_dream_space(image_tensor(picture.pixels, dreamer.device), picture.linear)
        object_steps, share = _object_steps(picture, settings, rgb)
        vectors = None if picture.vectors is None else image_tensor(picture.vectors, dreamer.device)
        prepared = self.carry.prepare(settings.temporal, rgb, vectors)
        steps = combined_steps(mask_tensor(mask, rgb), object_steps, temporal_steps(prepared))
        return Dreaming(picture, frame, objective, rgb, restore, share, vectors, prepared, steps)

    def finish(self, dreamer: Dreamer, dreaming: "Dreaming", dreamed: torch.Tensor, settings: DreamSettings, *,
               blend: Optional[tuple[Picture, float]] = None) -> Picture:
        """The frame's output from the engine's dream of ``dreaming.base``;
        the sequence takes on what the next frame carries."""
        rgb, prepared, share, objective = dreaming.rgb, dreaming.prepared, dreaming.share, dreaming.objective
        if settings.keep_colors:
            dreamed = keep_source_colours(dreamed, rgb)
        dreamed = anchored = self.carry.settle(prepared, dreamed, rgb)
        if share is not None:
            dreamed = objects.lay_over(rgb, dreamed, share)
        mix = settings.mix
        output = dreamed if blend is None else self._faded(dreamer, objective, settings, rgb, dreamed, share, *blend)
        shown = output if mix == 1.0 else (rgb + mix * (output - rgb)).clamp(0.0, 1.0)
        strength = _strength(dreamer, objective, settings, dreamed, rgb, prepared)
        self.carry.advance(prepared, dreamed, rgb, dreaming.vectors, strength, anchored=anchored)
        self.last_frame = dreaming.frame
        return dreaming.picture.with_pixels(tensor_pixels(from_dream_space(shown, dreaming.restore)))

    @staticmethod
    def _faded(dreamer: Dreamer, objective: Objective, settings: DreamSettings, rgb: torch.Tensor,
               dreamed: torch.Tensor, share: Optional[torch.Tensor], other: Picture, ramp: float) -> torch.Tensor:
        """This chain's dream cross-faded into the other chain's, whose output
        (``other``, mixed) is taken back to its dream."""
        other_rgb, _ = to_dream_space(image_tensor(other.pixels, rgb.device), other.linear)
        if other_rgb.shape != rgb.shape:
            raise ShapeMismatch(f"the other chain's frame is {other.width}x{other.height}, this one "
                                f"{rgb.shape[-1]}x{rgb.shape[-2]}")
        if settings.mix == 0.0:
            return dreamed  # the output is the render whatever the dream
        other_dream = (rgb + (other_rgb - rgb) / settings.mix).clamp(0.0, 1.0)
        result = crossfade.faded(dreamer, objective, settings.config, rgb, dreamed, other_dream, ramp)
        return result if share is None else objects.lay_over(rgb, result, share)


def _strength(dreamer: Dreamer, objective: Objective, settings: DreamSettings, dreamed: torch.Tensor,
              rgb: torch.Tensor, prepared: temporal.Prepared) -> Optional[float]:
    """How much the dream raised the objective over its render (see
    dream_strength), which the carry's strength governor holds a chain to;
    None without a carry. Costs a forward pass of the dream and its render
    together."""
    if prepared.mode == "none":
        return None
    return temporal.dream_strength(*dreamer.scores(torch.cat([dreamed, rgb]), objective, settings.config))


def _object_steps(picture: Picture, settings: DreamSettings,
                  rgb: torch.Tensor) -> tuple[StepMask, Optional[torch.Tensor]]:
    """The objects' step maps by octave and the share of each pixel that dreams, or (None, None)."""
    maps = objects.object_maps(picture, settings.objects, rgb.device)
    if maps is None:
        return None, None
    return objects.octave_steps(maps.steps, maps.share, settings.config.octave_scale), maps.share


def _combined(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if a is None or b is None:
        return a if b is None else b
    return a * b


def follows(last: Optional[int], frame: Optional[int]) -> bool:
    """Motion is carried only into the next frame of a sequence (or when frames are unnumbered)."""
    return last is None or frame is None or frame == last + 1
