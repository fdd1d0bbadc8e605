"""Dream Renders' engine: DeepDream for rendered frames and animations.

>>> from dream_core import dream                 # NumPy in, NumPy out
>>> from dream_core import Dreamer, DreamConfig  # keep a model warm

The names are imported lazily so that the standard-library-only modules
(``dream_core.protocol``, ``dream_core.client``) load without torch or NumPy,
as they must inside Blender.
"""
from __future__ import annotations

import importlib

from .version import __version__

_EXPORTS = {
    "dream": "api", "dream_picture": "api", "dream_pixels": "api",
    "DreamConfig": "engine", "Dreamer": "engine", "Progress": "engine",
    "Picture": "io", "read_image": "io", "write_image": "io",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'dream_core' has no attribute {name!r}")
