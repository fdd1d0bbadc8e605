"""Dreaming what the user sees: a request's ``display`` payload (the render
through the view transform) is what is dreamed, with the render's passes;
an EXR reply carries the dream back to the render's scene light."""
import numpy as np
import pytest
from conftest import TINY_PARAMS

from dream_core.frame.colour import carry_back
from dream_core.io import Picture, decode_image, encode_image


def frames(coffee):
    linear = np.ascontiguousarray(coffee ** 2.2 * 1.5, np.float32)  # scene light, highlights above 1
    shown = np.ascontiguousarray((linear / (1.0 + linear)) ** (1 / 2.2), np.float32)  # a tone curve, as a view
    return linear, shown


def test_the_displayed_image_is_dreamed_and_an_exr_reply_comes_back_in_scene_light(client, coffee):
    linear, shown = frames(coffee)
    render = encode_image(Picture(linear, True, "float32"), "exr")
    display = encode_image(Picture(shown, False, "uint16"), "png")
    extras = {"display": (display, {"format": "png"})}
    from dream_core.wire.client import FrameRequest

    def dream(params, fmt, with_display=True):
        request = FrameRequest(render, "exr", extras=extras if with_display else {}, output={"format": fmt})
        (result,) = client.dream_many([request], dict(TINY_PARAMS, **params))
        return decode_image(result.data, fmt).pixels

    shown_dream = dream({}, "png")
    (alone,) = client.dream_many([FrameRequest(display, "png", output={"format": "png"})], TINY_PARAMS)
    np.testing.assert_array_equal(shown_dream, decode_image(alone.data, "png").pixels)  # the displayed image's dream
    np.testing.assert_allclose(dream({"mix": 0.0}, "exr"), linear, atol=2e-3)  # mix 0: the render itself
    back = dream({}, "exr")
    assert back.max() > 1.0  # highlights kept
    assert np.abs(back - linear).mean() > 0.01  # the dream, in scene light
    as_displayed = (back / (1.0 + back)) ** (1 / 2.2)  # through the same view again
    assert np.abs(as_displayed - shown_dream).mean() < 0.5 * np.abs(shown_dream - shown).mean()


def test_carrying_back_keeps_the_render_where_the_dream_changed_nothing(coffee):
    linear, shown = frames(coffee)
    np.testing.assert_allclose(carry_back(linear, shown, shown), linear, atol=1e-6)
    brighter = np.clip(shown + 0.1, 0, 1)
    assert (carry_back(linear, shown, brighter) >= linear - 1e-6).all()


def test_a_reply_for_an_8_bit_file_holds_blenders_dithered_levels(client, coffee):
    """With ``dither`` the reply's 16-bit PNG holds 8-bit levels, the dream
    rounded with Blender's noise: at mix 0 the render's shown image as
    Blender would round it; a bad request is refused before dreaming."""
    from dream_core.io.dither import to_8bit_levels
    from dream_core.wire.client import FrameRequest
    from dream_core.wire.protocol import ProtocolError

    _, shown = frames(coffee)
    display = encode_image(Picture(shown, False, "uint16"), "png")
    asked = {"intensity": 1.0, "pattern": "blender4"}
    (result,) = client.dream_many([FrameRequest(display, "png", output={"format": "png", "dither": asked})],
                                  dict(TINY_PARAMS, mix=0.0))
    levels = decode_image(result.data, "png").pixels * 255
    np.testing.assert_array_equal(levels, np.round(levels))  # whole 8-bit levels
    sent = decode_image(display, "png").pixels
    np.testing.assert_array_equal(levels, to_8bit_levels(sent, 1.0, "blender4") * 255)
    for fmt, bad in (("png", {"intensity": 3, "pattern": "blender4"}), ("png", {"intensity": 1, "pattern": "gimp"}),
                     ("png", "yes"), ("exr", asked)):
        with pytest.raises(ProtocolError) as err:
            list(client.dream_many([FrameRequest(display, "png", output={"format": fmt, "dither": bad})], TINY_PARAMS))
        assert err.value.code == "bad_header", (bad, err.value)
