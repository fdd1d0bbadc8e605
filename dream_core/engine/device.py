"""Where a dream runs, and how pixels get there and back: a frame goes to
the device once and comes back once."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..errors import BadSetting


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadSetting(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadSetting("device cuda requested, but this torch sees no CUDA GPU")
    if device.type == "mps" and not _mps_available():
        raise BadSetting("device mps requested, but MPS is not available")
    return device


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def image_tensor(pixels: np.ndarray, device: Optional[torch.device] = None) -> torch.Tensor:
    """H×W×C float pixels as a [1, C, H, W] float32 tensor (the engine takes C = 3)."""
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]
    return tensor if device is None else tensor.to(device)


def tensor_pixels(tensor: torch.Tensor) -> np.ndarray:
    """[1, C, H, W] back to H×W×C float32 NumPy pixels (one copy off the device)."""
    return tensor[0].permute(1, 2, 0).float().contiguous().cpu().numpy()
