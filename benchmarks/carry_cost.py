"""What carrying the dream from frame to frame costs beyond dreaming each
frame alone, counted in what a GPU pays for: per temporal mode, the
operations of one frame that launch a kernel and the values read back to
the host (each one waits for all the work queued), beyond those of ``none``,
and which functions issue them.

On a GPU a carried frame's own work is a few passes over each map, and at
1080p that takes less time than launching it: the cost follows the number
of operations (measured on an H200, docs/BENCHMARKS.md: about 25 ms beyond
``none`` for about 900 operations). So a machine without a GPU can measure
the lever: the count is the same on every device, and the blurs and warps
are counted on the code path a GPU takes (two convolutions, not shifted
sums; a row of taps in one gather, not four).
The frames are bench_gpu's panning shot (the Vector pass written for it),
dreamed by lite0 with random weights, 4 octaves x 10 iterations; the
count does not depend on the size while the frame fits in one tile.

    .venv/bin/python benchmarks/carry_cost.py [--size 64x36] [--modes vectors,flow,blend]
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
from dataclasses import replace

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dream_core.config import DreamConfig, DreamSettings  # noqa: E402
from dream_core.engine import Dreamer  # noqa: E402
from dream_core.frame.temporal import blur, warping  # noqa: E402
from dream_core.tools.bench_gpu import _shot_dreamer, panning_shot  # noqa: E402

# operations that only make a new view of a tensor: no kernel on any device
VIEWS = ("view", "select", "unsqueeze", "expand", "slice", "unbind", "reshape", "alias", "aten.t", "transpose",
         "narrow", "split", "permute", "squeeze", "detach", "as_strided", "lift")
READ_BACK = "aten._local_scalar_dense"  # .item(), bool(tensor), float(tensor)


class Counted(TorchDispatchMode):
    """Counts the kernels launched under it, and the innermost dream_core function that launched each."""

    def __init__(self) -> None:
        super().__init__()
        self.kernels: collections.Counter = collections.Counter()
        self.by_function: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if not any(v in name for v in VIEWS):
            self.kernels[name] += 1
            frame = sys._getframe(1)
            while frame is not None and "dream_core" not in frame.f_code.co_filename:
                frame = frame.f_back
            if frame is not None:
                self.by_function[f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"] += 1
        return func(*args, **(kwargs or {}))


def count_frame(dreamer: Dreamer, settings: DreamSettings, width: int, height: int) -> Counted:
    """The third frame of a shot (the first two start the chain), counted."""
    dream_frames = _shot_dreamer(dreamer, panning_shot(width, height, 3), settings)
    dream_frames(2)
    with Counted() as counted:
        dream_frames(1)
    return counted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="64x36")
    p.add_argument("--modes", default="vectors,flow,blend")
    p.add_argument("--top", type=int, default=12, help="functions listed per mode")
    args = p.parse_args()
    width, height = map(int, args.size.split("x"))
    blur._blur_shifted = blur._blur_convolved  # the GPU's code paths, here on the CPU
    warping._row_tap_by_tap = warping._row_at_once
    torch.manual_seed(0)
    dreamer = Dreamer("lite0", weights=None, device="cpu")
    settings = DreamSettings("lite0", layer=dreamer.info.default_layer, weights=None,
                             config=DreamConfig(octaves=4, octave_scale=1.4, iterations=10))
    alone = count_frame(dreamer, replace(settings, temporal="none"), width, height)
    total = sum(alone.kernels.values())
    print(f"one frame of {width}x{height}, lite0, 4 octaves x 10 iterations; kernels launched, values read back")
    print(f"none     {total:5d} kernels, {alone.kernels[READ_BACK]} read back")
    for mode in args.modes.split(","):
        carried = count_frame(dreamer, replace(settings, temporal=mode), width, height)
        extra = sum(carried.kernels.values()) - total
        print(f"{mode:8s} {sum(carried.kernels.values()):5d} kernels (+{extra}, {extra / total:+.0%}), "
              f"{carried.kernels[READ_BACK]} read back; beyond none, by function:")
        for function, n in (carried.by_function - alone.by_function).most_common(args.top):
            print(f"    {n:4d}  {function}")


if __name__ == "__main__":
    main()
