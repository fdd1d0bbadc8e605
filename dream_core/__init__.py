"""Dream Renders' engine: DeepDream for rendered frames and animations.

>>> from dream_core import dream                 # NumPy in, NumPy out
>>> from dream_core import Dreamer, DreamConfig  # keep a model warm

The names are imported lazily so that the standard-library-only packages
``dream_core.wire`` (protocol, client) and ``dream_core.shot`` (settings, the
shot planner, provenance) and the torch-free ``config`` load without torch
or NumPy, as they must inside Blender and for ``--help``.
"""
from __future__ import annotations

import importlib

from .version import __version__

_EXPORTS = {
    "dream": "api", "dream_picture": "api",
    "DreamConfig": "config", "DreamSettings": "config", "Progress": "config",
    "ObjectStrengths": "config", "Dreamer": "engine", "SequenceDreamer": "frame.pipeline",
    "Picture": "io", "read_image": "io", "write_image": "io",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'dream_core' has no attribute {name!r}")
