"""Lucid's assert_gradient_ascent, for our objectives: a few dream steps must
raise every objective."""
import pytest
import torch
from conftest import to_tensor

from dream_core.config import DreamConfig
from dream_core.engine.objectives import Channels, Layer, Sum, parse_objective

FEW_STEPS = DreamConfig(octaves=1, iterations=4, step=0.02, jitter=0, tile=0)


def assert_gradient_ascent(dreamer, objective, image):
    before = dreamer.score(image, objective)
    after = dreamer.score(dreamer.run(image, objective, FEW_STEPS), objective)
    assert after > before * 1.05, f"{objective!r}: {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("text", ["block6", "block9:3,17", "block5+0.5*block10", "head"])
def test_objectives_rise(lite0, coffee, text):
    assert_gradient_ascent(lite0, parse_objective(text), to_tensor(coffee))


def test_guide_objective_rises_and_pulls_towards_the_guide(lite0, coffee):
    import cv2
    import numpy as np
    import skimage.data

    guide = cv2.resize(skimage.data.chelsea(), (96, 64)).astype(np.float32) / 255
    objective = lite0.objective("block8", guide=guide)
    assert_gradient_ascent(lite0, objective, to_tensor(coffee))


def test_objectives_compose():
    combined = Layer("a") + 0.5 * Channels("b", [1]) + Layer("c")
    assert isinstance(combined, Sum) and len(combined.terms) == 3
    assert combined.layers == {"a", "b", "c"}
    acts = {"a": torch.ones(2, 3, 4, 4), "b": torch.full((2, 2, 4, 4), 2.0), "c": torch.zeros(2, 1, 2, 2)}
    assert torch.allclose(combined(acts), torch.tensor([3.0, 3.0]))
    assert "0.5 * channels('b', [1])" in repr(combined)


@pytest.mark.parametrize("text, message", [
    ("block9:x", "bad channel list"), ("a*block9", "bad weight"), ("block9+", "empty term"),
    ("1e308*block9", "must be from -1000 to 1000"), ("nan*block9", "must be from"), ("-inf*block9", "must be from"),
])
def test_parse_errors_are_specific(text, message):
    with pytest.raises(ValueError, match=message):
        parse_objective(text)


def test_out_of_range_channel_is_reported(lite0, coffee):
    with pytest.raises(ValueError, match="out of range for layer block9"):
        lite0.run(to_tensor(coffee), lite0.objective("block9", [5000]), FEW_STEPS)


def test_unknown_layer_for_model_lists_valid_layers(lite0):
    with pytest.raises(ValueError, match="valid: stem, block0"):
        lite0.objective("inception4c")


def test_two_guides_of_the_same_size_each_pull_their_own_way(coffee):
    """Compiled objectives are cached per dreamer: a second guide image of the
    same size must not reuse the first one's objective."""
    import numpy as np

    from dream_core import dream

    rng = np.random.default_rng(5)
    first, second = (rng.random((48, 64, 3), dtype=np.float32) for _ in range(2))
    settings = dict(layer="block8", octaves=1, iterations=3, device="cpu")
    dream(coffee, guide=first, **settings)  # leaves a cached dreamer and objective behind
    after_first = dream(coffee, guide=second, **settings)
    from dream_core.engine import Dreamer

    fresh = Dreamer("lite0", device="cpu")
    alone = fresh.run(to_tensor(coffee), fresh.objective("block8", guide=second),
                      DreamConfig(octaves=1, iterations=3))
    assert np.allclose(after_first, alone[0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_the_objective_cache_is_bounded(coffee):
    from dream_core.engine import Dreamer

    dreamer = Dreamer("lite0", device="cpu")
    for channel in range(Dreamer.CACHED_OBJECTIVES + 5):
        dreamer.run(to_tensor(coffee), dreamer.objective("block3", [channel]), FEW_STEPS.replace(iterations=1))
    assert len(dreamer._compiled) == Dreamer.CACHED_OBJECTIVES
