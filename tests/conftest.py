"""Shared fixtures. Real models at tiny sizes; nothing touches the network."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line("markers", "blender: needs Blender (bpy module or the blender binary)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU")


@pytest.fixture(scope="session")
def lite0():
    from dream_core.engine import Dreamer

    return Dreamer("lite0", device="cpu")


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """A real photo, 96×128, sRGB float in [0, 1]."""
    import skimage.data

    import cv2

    img = cv2.resize(skimage.data.coffee(), (128, 96), interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 255


@pytest.fixture()
def rng():
    return np.random.default_rng(1234)


def run_cli(*args: str, cwd: str | None = None, input: str | None = None, env: dict | None = None):
    """Runs ``python -m dream_core`` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, "-m", "dream_core", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, input=input, env=full_env, timeout=600)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img[..., :3])).permute(2, 0, 1)[None]
