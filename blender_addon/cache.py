"""Which dreamed frames on disk can be reused: each output folder keeps a
small manifest (``.dream_frames.json``) of the settings every frame was
dreamed with. A frame is reused only if it exists and was dreamed with the
settings it would get now (model, layer, octaves, iterations, step, mix at
that frame, seed, temporal mode, size...); otherwise it is dreamed again."""
from __future__ import annotations

import hashlib
import json
import os

from .wire.atomic import write_atomically
from .wire.plans import FramePlan

MANIFEST = ".dream_frames.json"


def fingerprint(params: dict, size: tuple[int, int]) -> str:
    """What makes a dreamed frame what it is, as a short stable digest."""
    text = json.dumps({"params": params, "size": list(size)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class FrameCache:
    """The manifests of the folders a run writes into (read once, written on each frame)."""

    def __init__(self) -> None:
        self.manifests: dict[str, dict[str, str]] = {}

    def _manifest(self, folder: str) -> dict[str, str]:
        if folder not in self.manifests:
            try:
                with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
                    loaded = json.load(f)
                self.manifests[folder] = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self.manifests[folder] = {}  # none yet, or unreadable: nothing is known to be reusable
        return self.manifests[folder]

    def reusable(self, plan: FramePlan, print_: str) -> bool:
        folder, name = os.path.split(plan.target)
        return plan.done and self._manifest(folder).get(name) == print_

    def record(self, target: str, print_: str) -> None:
        folder, name = os.path.split(target)
        manifest = self._manifest(folder)
        manifest[name] = print_
        write_atomically(os.path.join(folder, MANIFEST), json.dumps(manifest, indent=0, sort_keys=True).encode())
