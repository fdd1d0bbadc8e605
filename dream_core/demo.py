"""The README's first command: dream a sample picture offline and say where it went."""
from __future__ import annotations

import os
import sys

from .batch import LocalBackend, run_batch
from .settings import DreamSettings
from .frames_dir import FrameJob

SAMPLE = os.path.join(os.path.dirname(__file__), "data", "chelsea.jpg")


def run_demo(out_dir: str = "demo_output") -> int:
    target = os.path.abspath(os.path.join(out_dir, "chelsea_dream.png"))
    backend = LocalBackend(DreamSettings())
    print(f"dreaming {SAMPLE} with lite0 on {backend.dreamer.device} ...", file=sys.stderr)
    run_batch([FrameJob(SAMPLE, target)], backend, overwrite=True)
    print(f"dreamed sample written to {target}")
    return 0
