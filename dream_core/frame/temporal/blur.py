"""Gaussian blur of masks and maps, the fastest way on each device."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(mask: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian of a [N, C, H, W] mask (radius 4 sigma, edges repeated)."""
    radius = max(1, round(4 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    weights = taps / taps.sum()
    # On the CPU a few-channel convolution is pathological (measured at 1080p:
    # 86 ms as conv2d, 29 ms as shifted sums); on a GPU the shifted sums are
    # dozens of tiny kernels each, and every frame blurs a dozen times.
    blur = _blur_shifted if mask.device.type == "cpu" else _blur_convolved
    return blur(mask, weights)


def _blur_shifted(mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    radius, (h, w), taps = len(weights) // 2, mask.shape[-2:], weights.tolist()
    padded = F.pad(mask, (radius, radius, 0, 0), mode="replicate")
    rows = sum(k * padded[..., i:i + w] for i, k in enumerate(taps))
    padded = F.pad(rows, (0, 0, radius, radius), mode="replicate")
    return sum(k * padded[..., i:i + h, :] for i, k in enumerate(taps))


def _blur_convolved(mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    radius, channels = len(weights) // 2, mask.shape[1]
    padded = F.pad(mask, (radius, radius, radius, radius), mode="replicate")
    kernel = weights.to(mask.device, mask.dtype).view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    rows = F.conv2d(padded, kernel, groups=channels)
    return F.conv2d(rows, kernel.transpose(2, 3), groups=channels)
