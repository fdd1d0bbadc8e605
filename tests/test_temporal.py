import subprocess
import sys

import numpy as np
import pytest
from test_blender import HAS_BPY, SCENARIOS

from dream_core import temporal
from dream_core.api import dream_sequence_frame
from dream_core.engine import DreamConfig
from dream_core.io import Picture, read_image


@pytest.fixture(scope="module")
def cube_frames(tmp_path_factory):
    if not HAS_BPY:
        pytest.skip("bpy module not installed")
    work = tmp_path_factory.mktemp("cube")
    result = subprocess.run([sys.executable, SCENARIOS, "moving_cube", str(work), "-"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return read_image(str(work / "frame_0001.exr")), read_image(str(work / "frame_0002.exr"))


@pytest.mark.blender
def test_vector_pass_convention_from_a_real_render(cube_frames):
    """The cube moves right and up; warping frame 1 by frame 2's vectors must
    land it where frame 2 shows it."""
    first, second = cube_frames
    alpha1 = np.ascontiguousarray(first.pixels[..., 3])
    alpha2 = second.pixels[..., 3]
    warped, _ = temporal.warp(alpha1, temporal.vectors_to_flow(second.vectors))
    cube = alpha2 > 0.5  # where frame 2 sees the cube (elsewhere the pass is empty: no surface)
    unwarped_error = np.abs(alpha1 - alpha2)[cube].mean()
    warped_error = np.abs(warped - alpha2)[cube].mean()
    assert unwarped_error > 0.2
    assert warped_error < 0.1 * unwarped_error, (warped_error, unwarped_error)
    # Z/W hold the motion towards the next frame: following it from frame 1 comes back consistent
    forward = temporal.next_flow_from_vectors(first.vectors)
    agree = temporal.consistency(temporal.vectors_to_flow(second.vectors), forward)
    assert agree[cube].mean() > 0.8


def _moving_pictures(count=4, shift=3):
    """A smooth texture panning right by ``shift`` px a frame, with exact vectors."""
    rng = np.random.default_rng(0)
    import cv2

    big = cv2.resize(rng.random((12, 24, 3)).astype(np.float32), (160 + shift * count, 64),
                     interpolation=cv2.INTER_CUBIC).clip(0, 1)
    vectors = np.zeros((64, 128, 4), np.float32)
    vectors[..., 0] = -shift  # each pixel was `shift` px to the left in the previous frame
    vectors[..., 2] = -shift  # steady motion: Blender's Z equals X
    pictures = []
    for i in range(count):
        x0 = shift * (count - i)
        pictures.append(Picture(big[:, x0:x0 + 128].copy(), False, "uint8", vectors))
    return pictures


def test_prepare_carries_detail_along_the_motion():
    pictures = _moving_pictures(2)
    src0, src1 = pictures[0].pixels, pictures[1].pixels
    dream0 = np.clip(src0 + 0.2 * np.sin(np.arange(128) / 3)[None, :, None], 0, 1).astype(np.float32)
    previous = temporal.Previous(src0, dream0, pictures[0].vectors)
    prepared = temporal.prepare("vectors", src1, pictures[1].vectors, previous)
    assert prepared.mode == "vectors"
    inner = (slice(None), slice(10, -10))
    carried = prepared.base - src1
    expected, _ = temporal.warp(dream0 - src0, temporal.vectors_to_flow(pictures[1].vectors))
    assert np.abs(carried[inner] - expected[inner]).mean() < 0.02
    assert prepared.strength[inner].mean() < 0.3  # damped where the dream was carried


def test_modes_and_errors():
    src = np.zeros((40, 40, 3), np.float32)
    assert temporal.resolve_mode("auto", None) == "flow"
    assert temporal.resolve_mode("auto", np.zeros((40, 40, 4))) == "vectors"
    with pytest.raises(ValueError, match="needs the Vector pass"):
        temporal.prepare("vectors", src, None, None)
    with pytest.raises(ValueError, match="temporal mode must be one of"):
        temporal.prepare("sideways", src, None, None)
    assert temporal.prepare("flow", src, None, None).base is src  # first frame: nothing to carry


def test_vectors_mode_flickers_less_than_independent_frames(lite0):
    pictures = _moving_pictures(4)
    config = DreamConfig(octaves=2, iterations=5, step=0.02)
    objective = lite0.objective("block6")
    results = {}
    for mode in ("none", "vectors"):
        previous, dreams = None, []
        for picture in pictures:
            out, previous = dream_sequence_frame(lite0, picture, objective, config, mode=mode, previous=previous)
            dreams.append(out.pixels)
        flows = [temporal.vectors_to_flow(p.vectors) for p in pictures[1:]]
        masks = [np.ones((64, 128), np.float32)] * len(flows)
        results[mode] = temporal.flicker(dreams, flows, masks)
    assert results["vectors"] < 0.6 * results["none"], results


def test_anchor_pulls_drifting_colours_back_gently():
    rng = np.random.default_rng(0)
    source = rng.random((32, 32, 3)).astype(np.float32) * 0.5 + 0.25
    anchor = (1.0, 1.2)  # the first frame's gains: same brightness, 20% more saturation
    drifted = np.clip(source * 1.3, 0, 1)  # a later frame that came out too bright and too saturated
    fixed = temporal.anchor_colours(drifted, source, anchor)
    gains_before = temporal.colour_gains(drifted, source)
    gains_after = temporal.colour_gains(fixed, source)
    assert abs(gains_after[0] - anchor[0]) < abs(gains_before[0] - anchor[0])
    assert abs(gains_after[1] - anchor[1]) < abs(gains_before[1] - anchor[1])
    assert np.abs(fixed - drifted).max() < 0.2  # at most a 10% step per frame: no popping
    same = temporal.anchor_colours(drifted, source, temporal.colour_gains(drifted, source))
    assert np.allclose(same, drifted, atol=1e-5)  # already on target: untouched
