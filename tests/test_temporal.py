import subprocess
import sys

import numpy as np
import pytest
import torch
from test_blender import HAS_BPY, SCENARIOS

from dream_core.config import DreamConfig, DreamSettings
from dream_core.engine import image_tensor, tensor_pixels
from dream_core.frame import temporal
from dream_core.frame.pipeline import SequenceDreamer
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
    alpha1 = image_tensor(first.pixels[..., 3:])
    alpha2 = image_tensor(second.pixels[..., 3:])
    flow = temporal.vectors_to_flow(image_tensor(second.vectors))
    warped, _ = temporal.warp(alpha1, flow)
    cube = alpha2 > 0.5  # where frame 2 sees the cube (elsewhere the pass is empty: no surface)
    unwarped_error = (alpha1 - alpha2).abs()[cube].mean()
    warped_error = (warped - alpha2).abs()[cube].mean()
    assert unwarped_error > 0.2
    assert warped_error < 0.1 * unwarped_error, (warped_error, unwarped_error)
    # Z/W hold the motion towards the next frame: following it from frame 1 comes back consistent
    forward = temporal.next_flow_from_vectors(image_tensor(first.vectors))
    agree = temporal.consistency(flow, forward)
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
    src0, src1 = image_tensor(pictures[0].pixels), image_tensor(pictures[1].pixels)
    vectors0, vectors1 = image_tensor(pictures[0].vectors), image_tensor(pictures[1].vectors)
    dream0 = (src0 + 0.2 * torch.sin(torch.arange(128) / 3)).clamp(0, 1)
    previous = temporal.Previous(src0, dream0, vectors0)
    prepared = temporal.prepare("vectors", src1, vectors1, previous)
    assert prepared.mode == "vectors"
    inner = (..., slice(10, -10))
    carried = prepared.base - src1
    expected, _ = temporal.warp(dream0 - src0, temporal.vectors_to_flow(vectors1))
    assert (carried[inner] - expected[inner]).abs().mean() < 0.02
    assert prepared.step_mask[inner].mean() < 0.3  # damped where the dream was carried


def test_warp_matches_opencv_remap():
    """Our warp runs on the dreaming device; OpenCV's remap is the reference."""
    import cv2

    rng = np.random.default_rng(1)
    image = rng.random((48, 64, 3), dtype=np.float32)
    flow = rng.normal(0, 4, (48, 64, 2)).astype(np.float32)
    xs, ys = np.meshgrid(np.arange(64, dtype=np.float32), np.arange(48, dtype=np.float32))
    expected = cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    warped, inside = temporal.warp(image_tensor(image), image_tensor(flow))
    error = np.abs(tensor_pixels(warped) - expected)
    assert error.mean() < 0.005 and error.max() < 0.04, error.max()  # OpenCV interpolates in 1/32 px steps
    in_frame = (xs + flow[..., 0] >= 0) & (xs + flow[..., 0] <= 63) & (ys + flow[..., 1] >= 0) & \
        (ys + flow[..., 1] <= 47)
    assert np.array_equal(tensor_pixels(inside)[..., 0] > 0.5, in_frame)


def test_modes_and_errors():
    src = torch.zeros((1, 3, 40, 40))
    assert temporal.resolve_mode("auto", None) == "flow"
    assert temporal.resolve_mode("auto", torch.zeros((1, 4, 40, 40))) == "vectors"
    with pytest.raises(ValueError, match="needs the Vector pass"):
        temporal.prepare("vectors", src, None, None)
    with pytest.raises(ValueError, match="temporal mode must be one of"):
        temporal.prepare("sideways", src, None, None)
    assert temporal.prepare("flow", src, None, None).base is src  # first frame: nothing to carry


def test_vectors_mode_flickers_less_than_independent_frames(lite0):
    pictures = _moving_pictures(4)
    config = DreamConfig(octaves=2, iterations=5, step=0.02)
    results = {}
    for mode in ("none", "vectors"):
        sequence, dreams = SequenceDreamer(), []
        settings = DreamSettings(layer="block6", temporal=mode, config=config)
        for picture in pictures:
            out = sequence.dream(lite0, picture, settings)
            dreams.append(image_tensor(out.pixels))
        flows = [temporal.vectors_to_flow(image_tensor(p.vectors)) for p in pictures[1:]]
        masks = [torch.ones((1, 1, 64, 128))] * len(flows)
        results[mode] = temporal.flicker(dreams, flows, masks)
    assert results["vectors"] < 0.6 * results["none"], results


def test_anchor_pulls_drifting_colours_back_gently():
    torch.manual_seed(0)
    source = torch.rand((1, 3, 32, 32)) * 0.5 + 0.25
    anchor = torch.tensor([1.0, 1.2])  # the first frame's gains: same brightness, 20% more saturation
    drifted = (source * 1.3).clamp(0, 1)  # a later frame that came out too bright and too saturated
    fixed = temporal.anchor_colours(drifted, source, anchor)
    gains_before = temporal.colour_gains(drifted, source)
    gains_after = temporal.colour_gains(fixed, source)
    assert ((gains_after - anchor).abs() < (gains_before - anchor).abs()).all()
    assert (fixed - drifted).abs().max() < 0.2  # at most a 10% step per frame: no popping
    same = temporal.anchor_colours(drifted, source, temporal.colour_gains(drifted, source))
    assert torch.allclose(same, drifted, atol=1e-5)  # already on target: untouched
