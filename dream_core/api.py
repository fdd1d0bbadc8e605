"""The public entry points: dream a NumPy image or a :class:`Picture`.

Colour is handled here so the engine sees only sRGB in [0, 1]: scene-linear
pictures are split into a [0, 1] part and a highlight ratio, dreamed in sRGB
and put back; alpha is never dreamed and comes back untouched.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from . import temporal
from .colour import compress_highlights, keep_source_colours, linear_to_srgb, luma, srgb_to_linear
from .engine import DreamConfig, Dreamer, ProgressCallback, image_tensor, tensor_pixels
from .io import Picture
from .objectives import Objective


@dataclass
class _Restore:
    source: torch.Tensor
    linear: bool
    ratio: Optional[torch.Tensor]


def to_dream_space(pixels: torch.Tensor, linear: bool) -> tuple[torch.Tensor, _Restore]:
    """Pixels [1, C, H, W] (C = 1…4) to sRGB [1, 3, H, W] in [0, 1], plus what undoes it."""
    if pixels.dim() != 4 or pixels.shape[1] not in (1, 2, 3, 4):
        raise ValueError(f"expected pixels with 1 to 4 channels, got shape {list(pixels.shape)}")
    if not torch.isfinite(pixels).all():
        raise ValueError("image holds NaN or infinite values")
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


@functools.lru_cache(maxsize=4)
def cached_dreamer(model: str, weights: Optional[str], device: str) -> Dreamer:
    """Models are costly to build; repeated calls reuse them."""
    return Dreamer(model, weights=weights, device=device)


def alpha_strength(pixels: np.ndarray) -> Optional[np.ndarray]:
    """The alpha channel as a per-pixel strength, or None without alpha."""
    return pixels[..., -1].clip(0, 1) if pixels.shape[-1] in (2, 4) else None


def _strength_tensor(strength: Optional[np.ndarray], like: torch.Tensor) -> Optional[torch.Tensor]:
    if strength is None:
        return None
    if strength.shape != like.shape[-2:]:
        raise ValueError(f"mask is {strength.shape[1]}x{strength.shape[0]}, "
                         f"image is {like.shape[-1]}x{like.shape[-2]}")
    return image_tensor(strength[..., None], like.device)


def dream_pixels(
    dreamer: Dreamer,
    pixels: np.ndarray,
    objective: Objective,
    config: DreamConfig,
    *,
    linear: bool = False,
    strength: Optional[np.ndarray] = None,
    keep_colors: bool = False,
    callback: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Dreams H×W×C float pixels and returns pixels of the same shape."""
    if pixels.ndim != 3:
        raise ValueError(f"expected pixels H×W×C with 1 to 4 channels, got shape {pixels.shape}")
    rgb, restore = to_dream_space(image_tensor(pixels, dreamer.device), linear)
    dreamed = _dream_rgb(dreamer, rgb, rgb, objective, config, _strength_tensor(strength, rgb), keep_colors,
                         callback)
    return tensor_pixels(from_dream_space(dreamed, restore))


def _dream_rgb(dreamer: Dreamer, base: torch.Tensor, source: torch.Tensor, objective: Objective,
               config: DreamConfig, strength: Optional[torch.Tensor], keep_colors: bool, callback) -> torch.Tensor:
    """Dreams ``base`` (dream space); ``source`` gives the colours to keep."""
    dreamed = dreamer.run(base, objective, config, strength=strength, callback=callback)
    return keep_source_colours(dreamed, source) if keep_colors else dreamed


def dream_sequence_frame(dreamer: Dreamer, picture: Picture, objective: Objective, config: DreamConfig, *,
                         mode: str = "none", previous: Optional[temporal.Previous] = None,
                         strength: Optional[np.ndarray] = None, keep_colors: bool = False, mix: float = 1.0,
                         callback: Optional[ProgressCallback] = None) -> tuple[Picture, temporal.Previous]:
    """Dreams one frame of an animation, coherent with ``previous`` (what
    the last frame returned) under temporal ``mode``; returns the dreamed
    picture and what the next frame needs. ``mix`` fades the output between
    the render (0) and the dream (1); the next frame still carries the full
    dream, so a keyframed fade does not wash out the coherence.

    The frame goes to the dreamer's device once and comes back once: colour
    conversion, warping and masks all run there."""
    rgb, restore = to_dream_space(image_tensor(picture.pixels, dreamer.device), picture.linear)
    vectors = None if picture.vectors is None else image_tensor(picture.vectors, dreamer.device)
    prepared = temporal.prepare(mode, rgb, vectors, previous)
    mask = _strength_tensor(strength, rgb)
    if prepared.strength is not None:
        mask = prepared.strength if mask is None else mask * prepared.strength
    dreamed = _dream_rgb(dreamer, prepared.base, rgb, objective, config, mask, keep_colors, callback)
    anchor = None
    if prepared.mode != "none":
        if previous is not None and previous.anchor is not None:
            anchor = previous.anchor
            dreamed = temporal.anchor_colours(dreamed, rgb, anchor)
        else:
            anchor = temporal.colour_gains(dreamed, rgb)
    shown = dreamed if mix == 1.0 else (rgb + mix * (dreamed - rgb)).clamp(0.0, 1.0)
    return (picture.with_pixels(tensor_pixels(from_dream_space(shown, restore))),
            temporal.Previous(rgb, dreamed, vectors, anchor))


def resume_previous(dreamer: Dreamer, render: Picture, dreamed: Picture) -> temporal.Previous:
    """What a sequence carries into its next frame, rebuilt from the last
    frame on disk (its render and its written dream) when a resumed run or
    a restarted server has lost it. The written dream is what gets carried:
    with a strength below 1 its detail is that much weaker."""
    source, _ = to_dream_space(image_tensor(render.pixels, dreamer.device), render.linear)
    dream_rgb, _ = to_dream_space(image_tensor(dreamed.pixels, dreamer.device), dreamed.linear)
    if dream_rgb.shape != source.shape:
        raise ValueError(f"the previous dream is {dreamed.width}x{dreamed.height}, its render "
                         f"{render.width}x{render.height}")
    vectors = None if render.vectors is None else image_tensor(render.vectors, dreamer.device)
    return temporal.Previous(source, dream_rgb, vectors, temporal.colour_gains(dream_rgb, source))


def dream_picture(dreamer: Dreamer, picture: Picture, objective: Objective, config: DreamConfig,
                  **options) -> Picture:
    """:func:`dream_pixels` for a :class:`Picture`, keeping how it is stored."""
    return picture.with_pixels(dream_pixels(dreamer, picture.pixels, objective, config,
                                            linear=picture.linear, **options))


def dream(
    image: np.ndarray,
    *,
    model: str = "lite0",
    layer: Optional[str] = None,
    channels: Optional[list[int]] = None,
    guide: Optional[np.ndarray] = None,
    mask: Union[np.ndarray, str, None] = None,
    octaves: int = 4,
    octave_scale: float = 1.4,
    iterations: int = 10,
    step: float = 0.01,
    jitter: int = 32,
    tile: int = -1,
    seed: int = 0,
    keep_colors: bool = False,
    linear: bool = False,
    device: str = "auto",
    weights: Optional[str] = "default",
    callback: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """DeepDream an image.

    Args:
        image: float array H×W×C (C = 1…4, alpha last): sRGB in [0, 1], or
            scene-linear (any positive value) with ``linear=True``.
        model, weights: a registered model (``dream_core.models.list_models()``)
            and ``"default"``, a ``.pth`` path, or None for random weights.
        layer: a layer name, ``"layer:3,17"`` for channels, or a weighted sum
            such as ``"block8+0.5*block10"``; default: the model's.
        channels: channel indices of ``layer`` to amplify.
        guide: an sRGB image H×W×3 in [0, 1] whose features to amplify.
        mask: per-pixel strength H×W in [0, 1], or ``"alpha"`` for the image's alpha.
        octaves, octave_scale, iterations, step, jitter, tile, seed: see :class:`DreamConfig`.
        keep_colors: dream luminance only and keep the source's colours.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        callback: called with a :class:`~dream_core.engine.Progress` after each step.

    Returns:
        The dreamed image, same shape and colour space as ``image``; alpha untouched.

    >>> import numpy as np
    >>> out = dream(np.full((64, 64, 3), 0.5, np.float32), weights=None, octaves=1, iterations=1)
    >>> out.shape
    (64, 64, 3)
    """
    config = DreamConfig(octaves=octaves, octave_scale=octave_scale, iterations=iterations, step=step,
                         jitter=jitter, tile=tile, seed=seed)
    dreamer = cached_dreamer(model, weights, device)
    objective = dreamer.objective(layer, channels, guide)
    strength = alpha_strength(image) if isinstance(mask, str) and mask == "alpha" else mask
    if isinstance(mask, str) and mask != "alpha":
        raise ValueError(f"mask must be an array or 'alpha', got {mask!r}")
    return dream_pixels(dreamer, np.asarray(image, dtype=np.float32), objective, config, linear=linear,
                        strength=strength, keep_colors=keep_colors, callback=callback)
