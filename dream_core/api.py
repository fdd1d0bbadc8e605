"""The public entry points: dream a NumPy image or a :class:`Picture`.

Colour is handled by the frame pipeline so the engine sees only sRGB in
[0, 1]: scene-linear pictures are split into a [0, 1] part and a highlight
ratio, dreamed in sRGB and put back; alpha is never dreamed and comes back
untouched.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Union

import numpy as np

from .config import DEFAULT_MODEL, DreamConfig, DreamSettings, ProgressCallback
from .engine import Dreamer, cached_dreamer
from .errors import BadSetting
from .frame.pipeline import SequenceDreamer
from .io import Picture

_DEFAULTS = DreamConfig()  # one definition of each default: dream_core/shot/settings.py


def dream_picture(dreamer: Dreamer, picture: Picture, settings: DreamSettings, *,
                  mask: Optional[np.ndarray] = None, guide: Optional[np.ndarray] = None,
                  callback: Optional[ProgressCallback] = None) -> Picture:
    """Dreams one picture on its own, keeping how it is stored."""
    return SequenceDreamer().dream(dreamer, picture, replace(settings, temporal="none"), mask=mask, guide=guide,
                                   callback=callback)


def dream(
    image: np.ndarray,
    *,
    model: str = DEFAULT_MODEL,
    layer: Optional[str] = None,
    channels: Optional[list[int]] = None,
    guide: Optional[np.ndarray] = None,
    mask: Union[np.ndarray, str, None] = None,
    octaves: int = _DEFAULTS.octaves,
    octave_scale: float = _DEFAULTS.octave_scale,
    iterations: int = _DEFAULTS.iterations,
    step: float = _DEFAULTS.step,
    jitter: int = _DEFAULTS.jitter,
    tile: int = _DEFAULTS.tile,
    seed: int = _DEFAULTS.seed,
    keep_colors: bool = False,
    linear: bool = False,
    device: str = "auto",
    weights: Optional[str] = DreamSettings.weights,
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
        mask: per-pixel step scale H×W in [0, 1], or ``"alpha"`` for the image's alpha.
        octaves, octave_scale, iterations, step, jitter, tile, seed: see :class:`DreamConfig`.
        keep_colors: dream luminance only and keep the source's colours.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        callback: called with a :class:`~dream_core.config.Progress` after each step.

    Returns:
        The dreamed image, same shape and colour space as ``image``; alpha untouched.

    >>> import numpy as np
    >>> out = dream(np.full((64, 64, 3), 0.5, np.float32), weights=None, octaves=1, iterations=1)
    >>> out.shape
    (64, 64, 3)
    """
    if isinstance(mask, str) and mask != "alpha":
        raise BadSetting(f"mask must be an array or 'alpha', got {mask!r}")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise BadSetting(f"expected pixels H×W×C with 1 to 4 channels, got shape {image.shape}")
    config = DreamConfig(octaves=octaves, octave_scale=octave_scale, iterations=iterations, step=step,
                         jitter=jitter, tile=tile, seed=seed)
    settings = DreamSettings(model=model, layer=layer, channels=channels, weights=weights, keep_colors=keep_colors,
                             mask="alpha" if isinstance(mask, str) else None, config=config)
    dreamer = cached_dreamer(model, weights, device)
    picture = Picture(image, linear, "float32")
    explicit = None if mask is None or isinstance(mask, str) else np.asarray(mask, dtype=np.float32)
    return dream_picture(dreamer, picture, settings, mask=explicit, guide=guide, callback=callback).pixels
