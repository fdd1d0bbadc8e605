"""The classic DeepDream backbones from torchvision: GoogLeNet (the network
of the original 2015 DeepDream), VGG16 and ResNet-50.

Weights come from torchvision's weights API (downloaded once into torch's hub
cache on a user's machine) or from a local ``.pth`` state dict. Only the
convolutional trunk is kept: classifier heads are never needed for dreaming.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from ..errors import WeightsUnavailable
from .backbone import Normalize, StagedNetwork, fold_batch_norms, load_matching_state

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

GOOGLENET_STAGES = [
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
    "inception5a", "inception5b",
]
# VGG16's convolutional configuration; "M" is a max-pool.
VGG16_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _vgg_layer_names(config: list) -> list[str]:
    """torchvision's ``features`` indices named as in the papers: conv3_1, relu3_1, pool3…"""
    names, block, conv = [], 1, 1
    for item in config:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


VGG16_LAYERS = _vgg_layer_names(VGG16_CONFIG)
RESNET50_LAYERS = ["stem"] + [f"layer{i}.{j}" for i, n in zip(range(1, 5), (3, 4, 6, 3)) for j in range(n)]


def _torchvision():
    """torchvision, imported when a classic model is built: it takes about 1.3 s to load, which the default
    model (lite0, its own code) and every server and command that never builds a classic one should not pay."""
    import torchvision

    return torchvision


def _googlenet():
    net = _torchvision().models.googlenet(weights=None, aux_logits=False, init_weights=False)
    trunk = nn.Module()
    for name in GOOGLENET_STAGES:
        trunk.add_module(name, getattr(net, name))
    return trunk, StagedNetwork(Normalize(IMAGENET_MEAN, IMAGENET_STD),
                                [(n, getattr(net, n)) for n in GOOGLENET_STAGES])


def _vgg16():
    net = _torchvision().models.vgg16(weights=None, init_weights=False)
    for module in net.features:
        if isinstance(module, nn.ReLU):
            module.inplace = False  # in place, it would overwrite a captured conv activation
    trunk = nn.Module()
    trunk.add_module("features", net.features)
    return trunk, StagedNetwork(Normalize(IMAGENET_MEAN, IMAGENET_STD), zip(VGG16_LAYERS, net.features))


def _resnet50():
    net = _torchvision().models.resnet50(weights=None)
    trunk = nn.Module()
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    for i in range(1, 5):
        layer = getattr(net, f"layer{i}")
        trunk.add_module(f"layer{i}", layer)
        stages += [(f"layer{i}.{j}", block) for j, block in enumerate(layer)]
    for name in ("conv1", "bn1"):
        trunk.add_module(name, getattr(net, name))
    return trunk, StagedNetwork(Normalize(IMAGENET_MEAN, IMAGENET_STD), stages)


# name -> (builder of (trunk with torchvision's key names, staged view), torchvision weights enum)
BUILDERS: dict[str, tuple[Callable, Callable[[], object]]] = {
    "googlenet": (_googlenet, lambda: _torchvision().models.GoogLeNet_Weights.IMAGENET1K_V1),
    "vgg16": (_vgg16, lambda: _torchvision().models.VGG16_Weights.IMAGENET1K_V1),
    "resnet50": (_resnet50, lambda: _torchvision().models.ResNet50_Weights.IMAGENET1K_V2),
}


# the checkpoint each weights enum above downloads, by name: a server's hello says whether each model's weights
# are on disk, which must not load torchvision for it (tests/test_models.py checks them against torchvision's)
CHECKPOINTS = {"googlenet": "googlenet-1378be20.pth", "vgg16": "vgg16-397923af.pth",
               "resnet50": "resnet50-11ad3fa6.pth"}


def hub_cache_path(name: str) -> str:
    """Where torchvision keeps the downloaded checkpoint of ``name``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", CHECKPOINTS[name])


def build_classic(name: str, weights: str | None) -> StagedNetwork:
    """``weights``: ``"download"`` (torchvision's API, cached), a ``.pth`` path, or None (random)."""
    builder, weights_enum = BUILDERS[name]
    trunk, staged = builder()
    if weights == "download":
        try:
            state = weights_enum().get_state_dict(progress=True)
        except OSError as err:  # urllib's errors are OSErrors: offline, a proxy, a firewall
            raise WeightsUnavailable(
                f"could not download the {name} weights ({getattr(err, 'reason', None) or err}); this machine may "
                "be offline: dream with lite0 (its weights come with it), or give a .pth file with --weights "
                "(a server: --weights-dir)") from None
        load_matching_state(trunk, state, f"torchvision {name} weights")
    elif weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        load_matching_state(trunk, state, weights)
    staged.eval()
    fold_batch_norms(batch_norm_pairs(staged))  # after loading: the checkpoint names the BatchNorms
    return staged


def batch_norm_pairs(net: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """Every (module, convolution, the BatchNorm its output goes through
    next) of torchvision's GoogLeNet and ResNet: a BasicConv2d's conv and
    bn, a Bottleneck's convN and bnN, and a convolution followed by a
    BatchNorm in a Sequential (ResNet's stem and downsampling)."""
    from torchvision.models.googlenet import BasicConv2d
    from torchvision.models.resnet import Bottleneck

    pairs = []
    for module in net.modules():
        if isinstance(module, BasicConv2d):
            pairs.append((module, "conv", "bn"))
        elif isinstance(module, Bottleneck):
            pairs += [(module, f"conv{i}", f"bn{i}") for i in (1, 2, 3)]
        elif isinstance(module, nn.Sequential):
            children = list(module.named_children())
            pairs += [(module, a, b) for (a, first), (b, second) in zip(children, children[1:])
                      if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d)]
    return pairs
