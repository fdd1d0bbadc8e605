"""Cryptomatte: which objects cover each pixel of a render, and how much.

A Cryptomatte layer (Blender's ``ViewLayer.CryptoObject``) stores, per
pixel, a few ranks of (id, coverage) pairs in channels ``<layer>00.r/g/b/a``,
``<layer>01…``: r and b are ids, g and a their coverage. An id is the
MurmurHash3 of the object's name with its 32 bits read as a float; the
file's header maps names to ids (``cryptomatte/<key>/manifest``), so no
hashing is needed here. Coverage is anti-aliased: an edge pixel shared by
two objects holds both, with motion blur and depth of field blended alike.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import BadImage
from .exr import Passes

OBJECT_LAYER = "CryptoObject"


@dataclass
class Cryptomatte:
    """One Cryptomatte layer: ``ids`` H×W×K (uint32), ``coverage`` H×W×K
    (float32, largest first), and the manifest, name -> id."""

    layer: str
    ids: np.ndarray
    coverage: np.ndarray
    manifest: dict[str, int]

    def names(self) -> list[str]:
        return sorted(self.manifest)

    def coverage_of(self, names: list[str]) -> np.ndarray:
        """H×W share of each pixel covered by the named objects."""
        wanted = np.array([self.manifest[n] for n in names], dtype=np.uint32)
        return (self.coverage * np.isin(self.ids, wanted)).sum(axis=-1).clip(0.0, 1.0)


MAX_MANIFEST = 16 << 20  # characters: a million objects' names and hashes fit


def _manifests(metadata: dict[str, str]) -> dict[str, dict[str, int]]:
    """Layer name -> manifest, from the ``cryptomatte/<key>/...`` attributes."""
    found: dict[str, dict[str, int]] = {}
    for key, layer in metadata.items():
        match = re.fullmatch(r"cryptomatte/([^/]+)/name", key)
        if not match:
            continue
        text = metadata.get(f"cryptomatte/{match.group(1)}/manifest", "{}")
        if len(text) > MAX_MANIFEST:
            raise BadImage(f"the Cryptomatte manifest of {layer} is {len(text)} characters; at most {MAX_MANIFEST}")
        try:
            found[layer] = {str(name): int(value, 16) for name, value in json.loads(text).items()}
        except (ValueError, TypeError, AttributeError, RecursionError):  # RecursionError: '[' nested deep
            raise BadImage(f"the Cryptomatte manifest of {layer} is not readable") from None
    return found


def _ranks(others: dict[str, np.ndarray], layer: str) -> tuple[np.ndarray, np.ndarray]:
    """The (id, coverage) ranks of ``layer``, in rank order."""
    ids, coverage = [], []
    for index in range(100):
        stem = f"{layer}{index:02d}."
        quad = [others.get(stem + c) for c in "rgba"]
        if quad[0] is None:
            quad = [others.get(stem + c) for c in "RGBA"]
        if any(c is None for c in quad):
            break
        if any(c.dtype != np.float32 for c in quad):
            raise BadImage(f"{layer} is stored at half precision: Cryptomatte ids need 32-bit float (render the "
                           "multilayer EXR at Float (Full))")
        ids += [quad[0].view(np.uint32), quad[2].view(np.uint32)]
        coverage += [quad[1], quad[3]]
    if not ids:
        raise BadImage(f"the file names Cryptomatte layer {layer} but holds none of its channels")
    return np.stack(ids, axis=-1), np.stack(coverage, axis=-1).astype(np.float32)


def cryptomatte_only(passes: Optional[Passes]) -> Optional[Passes]:
    """The Cryptomatte channels and manifest of ``passes`` (what object
    strengths need), or None: a frame sent to a server carries no more."""
    if passes is None or not passes.metadata:
        return None
    layers = _manifests(passes.metadata)
    kept = {name: c for name, c in passes.others.items() if any(name.startswith(layer) for layer in layers)}
    return Passes(passes.names, kept, passes.metadata) if kept else None


def read_cryptomatte(passes: Optional[Passes], kind: str = OBJECT_LAYER) -> Cryptomatte:
    """The first view layer's Cryptomatte of ``kind`` (objects by default);
    BadImage says how to render one when the frame has none."""
    layers = _manifests(passes.metadata) if passes is not None else {}
    names = sorted(name for name in layers if name.split(".")[-1] == kind)
    if not names:
        raise BadImage(f"object strengths need the frame's Cryptomatte {kind[6:]} pass: render multilayer EXR "
                       f"with View Layer > Passes > Cryptomatte > {kind[6:]} on")
    ids, coverage = _ranks(passes.others, names[0])
    return Cryptomatte(names[0], ids, coverage, layers[names[0]])
