"""A seam's cross-fade (dream_core.frame.crossfade): the ramp's average of
two chains' dreams, dreamed a little further so it is one pattern again."""
import torch
from test_temporal import _moving_pictures

from dream_core.config import DreamConfig
from dream_core.engine import image_tensor
from dream_core.frame.crossfade import faded


def test_a_faded_frame_is_one_pattern_again_and_the_ends_are_the_dreams(lite0):
    objective = lite0.objective("block6")
    config = DreamConfig(octaves=2, iterations=4, step=0.03, seed=1)
    render = image_tensor(_moving_pictures(1)[0].pixels)
    before = lite0.run(render, objective, config)
    after = lite0.run(render, objective, config.replace(seed=7, jitter=5))  # another chain: another pattern
    assert torch.equal(faded(lite0, objective, config, render, before, after, 0.0), before)
    assert torch.equal(faded(lite0, objective, config, render, before, after, 1.0), after)
    halfway = faded(lite0, objective, config, render, before, after, 0.5)
    average = 0.5 * (before + after)

    def strength(image):  # what the dream adds to the objective over the render
        return lite0.score(image, objective) - lite0.score(render, objective)

    assert strength(average) < 0.97 * min(strength(before), strength(after))  # a mix of two patterns is weaker
    assert strength(halfway) >= 0.5 * (strength(before) + strength(after))  # the fade keeps the dream's strength
    assert (halfway - average).abs().mean() < 0.5 * (before - after).abs().mean()  # still between the two
