"""Where a dream runs, and how pixels get there and back: a frame goes to
the device once and comes back once."""
from __future__ import annotations

import functools
import os
import platform
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


def cpu_threads(asked: int = 0) -> int:
    """How many threads the CPU's share of a dream runs on: ``asked``, else
    the user's ``OMP_NUM_THREADS``, else half the cores this process may use
    (at least one). Measured on 2 busy cores (docs/BENCHMARKS.md): threads
    that wait on each other where another process (Blender rendering) holds
    the cores made a frame 4-25 times slower than one thread did."""
    if asked < 0:
        raise BadSetting(f"threads must be 0 (automatic) or more, got {asked}")
    if asked:
        return asked
    told = os.environ.get("OMP_NUM_THREADS", "")
    if told.isdigit() and int(told) > 0:
        return int(told)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // 2)


def use_cpu_threads(asked: int = 0) -> int:
    """Sets torch's thread count (see :func:`cpu_threads`); returns it."""
    threads = cpu_threads(asked)
    torch.set_num_threads(threads)
    return threads


@functools.lru_cache(maxsize=64)
def constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A small table of numbers (nested tuples) as a tensor on ``device``,
    made once: a copy from the host every frame would wait on a GPU for all
    the work queued before it. Shared: never write into it."""
    return torch.tensor(values, dtype=dtype).to(device)


def uses_cuda_graphs(device: torch.device) -> bool:
    """NVIDIA CUDA only: ROCm builds (``torch.version.hip``) and MPS run eager."""
    return device.type == "cuda" and not torch.version.hip


def describe(device: torch.device) -> dict:
    """What the device is and how much memory it has free (GiB), for Test Connection."""
    if device.type == "cuda":
        kind, name = ("ROCm" if torch.version.hip else "CUDA"), torch.cuda.get_device_name(device)
        free, total = torch.cuda.mem_get_info(device)
    elif device.type == "mps":
        kind, name = "MPS", "Apple GPU"
        total = torch.mps.recommended_max_memory()
        free = total - torch.mps.driver_allocated_memory()
    else:
        kind, name = "CPU", f"{platform.machine()} CPU, {os.cpu_count()} cores"
        free, total = _system_memory()
    gib = 2**30
    return {"kind": kind, "name": name, "free_memory_gib": None if free is None else round(free / gib, 1),
            "memory_gib": None if total is None else round(total / gib, 1)}


def _system_memory() -> tuple[Optional[int], Optional[int]]:
    """(free, total) bytes of RAM where the system says (POSIX), else (None, None)."""
    try:
        size = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_AVPHYS_PAGES") * size, os.sysconf("SC_PHYS_PAGES") * size
    except (AttributeError, ValueError, OSError):
        return None, None


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def image_tensor(pixels: np.ndarray, device: Optional[torch.device] = None) -> torch.Tensor:
    """H×W×C float pixels as a [1, C, H, W] float32 tensor (the engine takes C = 3).
    float16 pixels bound for a GPU travel as they are, half the bytes, and
    become float32 there (exactly: every float16 is a float32); pixels in
    pinned memory (:func:`staged_pixels`) are copied without waiting."""
    if pixels.dtype == np.float16 and device is not None and torch.device(device).type != "cpu":
        host = torch.from_numpy(np.ascontiguousarray(pixels))
        return host.to(device, non_blocking=host.is_pinned()).float().permute(2, 0, 1)[None]
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]
    if device is None:
        return tensor
    return tensor.to(device, non_blocking=torch.device(device).type == "cuda" and tensor.is_pinned())


def staged_pixels(pixels: np.ndarray, device: torch.device) -> np.ndarray:
    """Pixels as they wait for ``device``: for CUDA, in pinned host memory
    and their own dtype (float16 stays half the bytes and is converted on the
    device), so the frame's upload does not hold up the device thread; for
    any other device float32, converted here rather than on the device
    thread (a CPU's device thread is the dream's own core)."""
    if device.type != "cuda":
        return pixels.astype(np.float32)
    staged = torch.empty(pixels.shape, dtype=torch.from_numpy(np.empty(0, pixels.dtype)).dtype, pin_memory=True)
    staged.numpy()[...] = pixels
    return staged.numpy()  # the array keeps the pinned tensor alive


def tensor_pixels(tensor: torch.Tensor) -> np.ndarray:
    """[1, C, H, W] back to H×W×C float32 NumPy pixels (one copy off the device)."""
    return tensor[0].permute(1, 2, 0).float().contiguous().cpu().numpy()
