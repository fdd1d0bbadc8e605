"""Blender's dither, as the server rounds a dream for an 8-bit file."""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dream_core.io.dither import AMPLITUDE, blender_noise, to_8bit_levels


@pytest.mark.parametrize("pattern, low, high, mean", [("blender4", -1, 1, 0.0), ("blender3", 0, 1, 0.5)])
def test_the_noise_has_blenders_range_and_centre(pattern, low, high, mean):
    noise = blender_noise(270, 480, pattern)
    assert noise.dtype == np.float32 and low <= noise.min() and noise.max() < high
    assert abs(noise.mean() - mean) < 0.01
    assert np.abs(np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]) < 0.02  # no pattern to see
    np.testing.assert_array_equal(noise, blender_noise(270, 480, pattern))  # the same every time


@settings(max_examples=30, deadline=None)
@given(level=st.floats(0.02, 0.98), intensity=st.floats(1.0, 2.0))
@example(level=0.02, intensity=1.90234375)  # found at random: the noise's span is 0.8415 of a level, not 0.84
def test_a_flat_tone_keeps_its_value_on_average_where_rounding_alone_would_not(level, intensity):
    """The point of the dither: a tone between two levels comes out as a mix
    of both that averages to about it (Blender 4's noise is centred), where
    plain rounding moves the whole area by up to half a level."""
    flat = np.full((64, 64, 4), level, np.float32)
    flat[..., 3] = 1.0
    levels = to_8bit_levels(flat, intensity, "blender4")
    assert np.all(levels * 255 == np.round(levels * 255))  # whole levels
    assert np.all(levels[..., 3] == 1.0)  # alpha is not dithered
    rounding_error = abs(np.round(level * 255) - level * 255)
    assert abs(levels[..., :3].mean() - level) * 255 <= 0.5 * rounding_error + 0.01
    assert np.abs(levels[..., :3] - level).max() * 255 <= 0.5 + float(AMPLITUDE) * 255 * intensity + 1e-3
