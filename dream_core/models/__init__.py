"""Model registry: one entry per backbone, weights described as data.

>>> sorted(list_models())
['googlenet', 'lite0', 'resnet50', 'vgg16']
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..config import DEFAULT_MODEL
from ..errors import UnknownModel
from .backbone import StagedNetwork, fold_batch_norms
from .classic import GOOGLENET_STAGES, RESNET50_LAYERS, VGG16_LAYERS, build_classic, hub_cache_path


@dataclass(frozen=True)
class ModelInfo:
    """What a user needs to pick a model and a layer."""

    name: str
    layers: tuple[str, ...]
    default_layer: str
    description: str
    # "package": weights ship in a Python package; "download": torchvision fetches them once.
    weights_source: str
    build: Callable[[str | None], StagedNetwork]

    def weights_offline(self) -> bool:
        """True when building with default weights needs no network."""
        if self.weights_source == "package":
            try:
                from .lite0 import packaged_weights_path

                return os.path.exists(packaged_weights_path())
            except ImportError:
                return False
        return os.path.exists(hub_cache_path(self.name))


def _build_lite0(weights: str | None) -> StagedNetwork:
    from .lite0 import batch_norm_pairs, lite0_classifier, staged

    net = lite0_classifier(weights)
    fold_batch_norms(batch_norm_pairs(net))  # before the stages are made: they take the folded layers
    return staged(net).eval()


LITE0_LAYERS = ("stem",) + tuple(f"block{i}" for i in range(16)) + ("head",)

_REGISTRY: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("lite0", LITE0_LAYERS, "block9", "EfficientNet-Lite0 (offline default)", "package",
                  _build_lite0),
        ModelInfo("googlenet", tuple(GOOGLENET_STAGES), "inception4c",
                  "GoogLeNet/Inception v1, the original DeepDream network", "download",
                  lambda w: build_classic("googlenet", w)),
        ModelInfo("vgg16", tuple(VGG16_LAYERS), "relu4_3", "VGG16, painterly textures", "download",
                  lambda w: build_classic("vgg16", w)),
        ModelInfo("resnet50", tuple(RESNET50_LAYERS), "layer3.3", "ResNet-50", "download",
                  lambda w: build_classic("resnet50", w)),
    )
}
__all__ = ["DEFAULT_MODEL", "ModelInfo", "get_model", "list_models", "model_info"]


def list_models() -> list[str]:
    return list(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModel(f"unknown model {name!r}; valid: {', '.join(_REGISTRY)}") from None


def get_model(name: str = DEFAULT_MODEL, *, weights: str | None = "default") -> StagedNetwork:
    """Builds model ``name`` in eval mode with frozen parameters.

    ``weights``: ``"default"`` (the packaged or downloaded ImageNet weights),
    a path to a ``.pth`` state dict, or None for random weights (tests, timing).
    """
    info = model_info(name)
    if weights == "default":
        weights = info.weights_source
    elif weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file not found: {weights}")
    net = info.build(weights)
    for p in net.parameters():
        p.requires_grad_(False)
    return net
