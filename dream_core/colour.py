"""Colour conversions around the dream: CNNs were trained on sRGB photos,
renders are often scene-linear with highlights above 1.0."""
from __future__ import annotations

import numpy as np


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)


def compress_highlights(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Splits linear RGB into a part within [0, 1] and a per-pixel ratio
    (>= 1) such that ``part * ratio == rgb``: the dream works on the part,
    the ratio puts highlights back so an HDR round trip stays faithful."""
    rgb = np.maximum(rgb, 0.0)
    ratio = np.maximum(rgb.max(axis=-1, keepdims=True), 1.0).astype(np.float32)
    return (rgb / ratio).astype(np.float32), ratio


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def keep_source_colours(dreamed: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Dreamed luminance with the source's chroma (YCbCr split): stops the
    drift towards dark, over-saturated colours that plain DeepDream shows."""
    y = luma(dreamed)[..., None]
    chroma = source - luma(source)[..., None]
    return np.clip(y + chroma, 0.0, 1.0).astype(np.float32)


def grey(pixels: np.ndarray) -> np.ndarray:
    """H×W×C pixels as one channel in [0, 1] (e.g. a mask image)."""
    value = pixels[..., :3].mean(axis=-1) if pixels.shape[-1] >= 3 else pixels[..., 0]
    return np.clip(value, 0.0, 1.0)


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """H×W×C pixels as H×W×3 (grey repeated, alpha dropped)."""
    return np.repeat(pixels[..., :1], 3, axis=-1) if pixels.shape[-1] < 3 else pixels[..., :3]
