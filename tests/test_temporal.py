import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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
    previous = temporal.Previous(source=src0, dream=dream0, vectors=vectors0)
    prepared = temporal.prepare("vectors", src1, vectors1, previous)
    assert prepared.mode == "vectors"
    inner = (..., slice(10, -10))
    carried = prepared.base - src1
    expected, _ = temporal.warp(dream0 - src0, temporal.vectors_to_flow(vectors1))
    assert (carried[inner] - expected[inner]).abs().mean() < 0.02
    assert prepared.step_mask[inner].mean() < 0.3  # damped where the dream was carried
    reference = 4 * temporal.pattern_energy(dream0 - src0)  # as if the pattern had been much stronger once
    regrowing = temporal.prepare("vectors", src1, vectors1, temporal.Previous(source=src0, dream=dream0,
                                                                              vectors=vectors0, reference=reference))
    held = temporal.prepare("vectors", src1, vectors1, temporal.Previous(source=src0, dream=dream0, vectors=vectors0,
                                                                         reference=reference, gain=0.0))
    assert (regrowing.fine_step_mask - regrowing.step_mask)[inner].mean() > 0.1
    assert torch.allclose(held.fine_step_mask, held.step_mask)  # a gain of 0: no regrowth at all


def _catmull_rom_reference(image, x, y):
    """One sample, straight from the Catmull-Rom formula (edges repeated)."""
    h, w = image.shape[:2]

    def weights(t):
        return [(-t**3 + 2 * t**2 - t) / 2, (3 * t**3 - 5 * t**2 + 2) / 2, (-3 * t**3 + 4 * t**2 + t) / 2,
                (t**3 - t**2) / 2]

    x0, y0 = int(np.floor(x)), int(np.floor(y))
    wx, wy = weights(x - x0), weights(y - y0)
    return sum(wy[j] * wx[i] * image[min(max(y0 + j - 1, 0), h - 1), min(max(x0 + i - 1, 0), w - 1)]
               for j in range(4) for i in range(4))


def test_warp_is_catmull_rom():
    rng = np.random.default_rng(1)
    image = rng.random((48, 64, 3), dtype=np.float32)
    flow = rng.normal(0, 4, (48, 64, 2)).astype(np.float32)
    warped, inside = temporal.warp(image_tensor(image), image_tensor(flow))
    warped = tensor_pixels(warped)
    for y, x in rng.integers(0, (48, 64), (50, 2)):
        expected = _catmull_rom_reference(image, x + flow[y, x, 0], y + flow[y, x, 1])
        assert np.allclose(warped[y, x], expected, atol=1e-4)
    xs, ys = np.meshgrid(np.arange(64), np.arange(48))
    in_frame = (xs + flow[..., 0] >= 0) & (xs + flow[..., 0] <= 63) & (ys + flow[..., 1] >= 0) & \
        (ys + flow[..., 1] <= 47)
    assert np.array_equal(tensor_pixels(inside)[..., 0] > 0.5, in_frame)
    shifted, _ = temporal.warp(image_tensor(image), torch.full((1, 2, 48, 64), 2.0))  # whole pixels: exact
    assert np.allclose(tensor_pixels(shifted)[:-2, :-2], image[2:, 2:], atol=1e-6)


def test_warping_a_hundred_times_never_lifts_a_pattern():
    """A carried pattern is resampled once a frame. The a = -0.75 cubic (as in
    grid_sample) lifts periods near 6.4 px by 3% a time at half-pixel shifts:
    x17 after 100 frames. Ours must never lift any period."""
    x = torch.arange(256, dtype=torch.float32)
    for period in (3.0, 4.0, 6.4, 10.0):
        wave = torch.cos(2 * np.pi * x / period).view(1, 1, 1, 256).expand(1, 1, 8, 256).contiguous()
        half = torch.zeros((1, 2, 8, 256))
        half[:, 0] = 0.5
        out = wave
        for i in range(100):
            out, _ = temporal.warp(out, half if i % 2 == 0 else -half)
        middle = out[..., 32:-32]
        assert middle.abs().max() <= 1.0 + 1e-4, (period, float(middle.abs().max()))


def test_the_sharp_warp_interpolates_keeps_fine_patterns_and_never_lifts_one():
    """The Vector pass's carry resamples the pattern by the interpolating
    cubic B-spline: samples come back exactly at whole-pixel moves, a 6 px
    period survives 40 half-pixel moves (Catmull-Rom keeps about a third),
    and no period grows, however often it is resampled."""
    image = torch.rand(1, 3, 40, 56)
    still, _ = temporal.warp_sharp(image, torch.zeros(1, 2, 40, 56))
    assert torch.allclose(still, image, atol=1e-5)
    moved, _ = temporal.warp_sharp(image, torch.full((1, 2, 40, 56), 2.0))
    assert torch.allclose(moved[..., :-2, :-2], image[..., 2:, 2:], atol=1e-5)
    flat, _ = temporal.warp_sharp(torch.full((1, 1, 9, 9), 0.3), torch.rand(1, 2, 9, 9) * 3)
    assert torch.allclose(flat, torch.full_like(flat, 0.3), atol=1e-5)

    x = torch.arange(256, dtype=torch.float32)
    half = torch.zeros((1, 2, 8, 256))
    half[:, 0] = 0.5

    def wave(period):
        return torch.cos(2 * np.pi * x / period).view(1, 1, 1, 256).expand(1, 1, 8, 256).contiguous()

    sharp = smooth = wave(6.0)
    for _ in range(40):
        sharp, _ = temporal.warp_sharp(sharp, half)
        smooth, _ = temporal.warp(smooth, half)
    inner = (..., slice(64, 192))
    kept_sharp, kept_smooth = (float(w[inner].std() / wave(6.0)[inner].std()) for w in (sharp, smooth))
    assert kept_sharp > 0.8 and kept_smooth < 0.45, (kept_sharp, kept_smooth)
    for period in (3.0, 4.0, 6.4, 10.0):
        out = wave(period)
        for i in range(100):
            out, _ = temporal.warp_sharp(out, half if i % 2 == 0 else -half)
        assert out[..., 32:-32].abs().max() <= 1.0 + 1e-4, period


def test_a_carried_pattern_stretched_past_the_limit_is_dreamed_afresh():
    """A slow zoom magnifies the carried pattern 5% a frame: it is carried
    while it stays within STRETCH_LIMIT of the scale it was dreamed at,
    dreamed afresh once it passes (keeping the colours and energy it is held
    to: the same surface), and carried on from there."""
    size, zoom = 48, 0.05
    source = torch.full((1, 3, size, size), 0.5)  # flat: the warp always agrees with the render
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    centre = (size - 1) / 2
    flow = torch.stack([-zoom * (xs - centre), -zoom * (ys - centre)])[None]  # came from 5% nearer the centre
    vectors = torch.cat([flow[:, 0:1], -flow[:, 1:2], torch.zeros_like(flow)], dim=1)
    pattern = 0.1 * torch.sin(xs / 2)[None, None].expand(1, 3, -1, -1)
    previous, carried, tracked = temporal.Previous(source=source, dream=source + pattern), [], []
    for _ in range(26):
        prepared = temporal.prepare("vectors", source, vectors, previous)
        carried.append(float(prepared.confidence[0, 0, 24, 24]))
        tracked.append(float(prepared.tracked[0, 0, 24, 24]))
        previous = temporal.Previous(source=source, dream=source + pattern,
                                     anchor=temporal.colour_anchor(source + pattern, source),
                                     deformation=temporal.next_deformation(prepared.deformation, prepared.confidence))
    passes = next(n for n in range(1, 30) if (1 - zoom) ** -n > temporal.STRETCH_LIMIT)  # frame 22
    assert min(carried[:passes - 1]) > 0.99
    assert carried[passes - 1] < 0.01  # dreamed afresh
    assert min(carried[passes:]) > 0.99  # carried on at its new scale
    assert min(tracked) > 0.99  # the motion was followed throughout


def test_stretch_is_the_worst_direction_of_a_deformation():
    def deformation(*values):
        return torch.tensor(values, dtype=torch.float32).view(1, 4, 1, 1)

    turn = math.radians(30)
    assert float(temporal.stretch(deformation(math.cos(turn), -math.sin(turn), math.sin(turn), math.cos(turn)))) \
        == pytest.approx(1.0)
    assert float(temporal.stretch(deformation(3.0, 0.0, 0.0, 1.0))) == pytest.approx(3.0)
    assert float(temporal.stretch(deformation(1.0, 0.0, 0.0, 0.4))) == pytest.approx(2.5)  # squeezed
    golden = (1 + math.sqrt(5)) / 2
    assert float(temporal.stretch(deformation(1.0, 1.0, 0.0, 1.0))) == pytest.approx(golden, rel=1e-5)  # a shear


def test_regrowth_restores_what_the_carry_lost_and_no_more():
    torch.manual_seed(0)
    pattern = (torch.rand((1, 3, 64, 64)) - 0.5) * 0.2
    reference = temporal.pattern_energy(pattern)
    intact = temporal.regrowth_share(reference, pattern)
    softened = temporal.regrowth_share(reference, temporal.gaussian_blur(pattern.transpose(0, 1), 1.0)
                                       .transpose(0, 1))
    inner = (..., slice(8, -8), slice(8, -8))
    assert intact[inner].max() < 0.01  # nothing lost: nothing regrown, however many frames
    assert softened[inner].mean() > 0.5  # a blurred pattern regrows most of its fine amplitude
    assert temporal.regrowth_share(reference, 3 * pattern)[inner].max() == 0  # over-grown: never more


def test_a_pattern_moved_by_a_fraction_of_a_pixel_is_not_regrown():
    """Carried intact by half a pixel, a dream's pattern reads weaker at the
    frame's size (its finest scales fall between the pixels) but not at
    twice it, where regrowth measures it: the finest octave stays damped.
    Blurred, it regrows."""
    source = torch.full((1, 3, 48, 64), 0.5)
    noise = torch.randn((1, 1, 48, 64), generator=torch.Generator().manual_seed(3))
    pattern = 0.1 * temporal.gaussian_blur(noise, 0.7) / temporal.gaussian_blur(noise, 0.7).std()
    dream = (source + pattern * torch.tensor([1.0, 0.6, -0.4]).view(1, 3, 1, 1)).clamp(0, 1)
    vectors = torch.zeros((1, 4, 48, 64))
    vectors[:, 0] = vectors[:, 2] = -0.5  # everything moved half a pixel right
    inner = (..., slice(12, -12), slice(12, -12))
    moved = temporal.prepare("vectors", source, vectors, temporal.Previous(source=source, dream=dream, vectors=vectors))
    assert moved.confidence[inner].min() > 0.99
    assert moved.fine_step_mask[inner].mean() < 0.03, float(moved.fine_step_mask[inner].mean())
    soft = (source + temporal.gaussian_blur(dream - source, 1.0)).clamp(0, 1)
    reference = temporal.detail_energy(dream - source, temporal.supersample(dream - source))
    previous = temporal.Previous(source=source, dream=soft, vectors=vectors, reference=reference)
    assert temporal.prepare("vectors", source, vectors, previous).fine_step_mask[inner].mean() > 0.3


def test_a_carried_pattern_changes_only_in_its_finest_scales():
    """Over carried pixels the ascent's change keeps its 1-2 px part and
    loses its coarse part (a slow shift of the carried pattern); where
    nothing was carried the dream keeps all of its change."""
    base = torch.full((1, 3, 32, 64), 0.5)
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 1, 64)
    fine = 0.05 * torch.cos(math.pi * x).expand(1, 3, 32, 64)  # a 2 px period
    coarse = 0.05 * torch.sin(2 * math.pi * x / 32).expand(1, 3, 32, 64)  # a 32 px period
    carried = torch.zeros((1, 1, 32, 64))
    carried[..., :, :32] = 1.0
    settled = temporal.fine_band_change(base + fine + coarse, base, carried)
    change = settled - base
    inside, outside = change[..., 8:24, 8:24], change[..., 8:24, 40:56]
    assert torch.allclose(inside, (fine + 0.0 * coarse)[..., 8:24, 8:24], atol=0.006)
    assert torch.allclose(outside, (fine + coarse)[..., 8:24, 40:56], atol=1e-6)


def test_regrowth_gain_follows_the_strength_to_its_limit():
    assert temporal.regrowth_gain(1.0, 3.3, 3.0) < 0.7  # 10% over: a large step down
    assert temporal.regrowth_gain(0.5, 2.7, 3.0) > 0.8  # 10% under: back up
    assert temporal.regrowth_gain(0.9, 2.0, 3.0) == 1.0 and temporal.regrowth_gain(0.1, 9.0, 3.0) == 0.0
    assert temporal.dream_strength(2.0, 1.0) == 2.0 and temporal.dream_strength(2.0, -1.0) is None


def test_the_strength_floor_lifts_the_next_frames_fine_steps_only_while_a_carried_dream_is_weak():
    """Under the floor (a share of the chain's first frame's strength, the
    limit over strength_limit) the next frame's finest octave takes more
    than the damping over the carried pattern; at its first frame's
    strength, or with no floor, nothing changes, and the coarse octaves
    never."""
    tuning = temporal.Tuning(strength_floor=0.95, lift_rate=1.0, lift_noise=0.0)
    limit = tuning.strength_limit * 2.0  # the chain's first frame raised the objective 2x
    weak = temporal.strength_lift(0.0, 1.5, limit, tuning)  # a quarter below the first frame's
    assert weak == pytest.approx((0.95 * 2.0 - 1.5) / (0.95 * 2.0))
    assert temporal.strength_lift(0.0, 2.0, limit, tuning) == 0.0  # at its first frame's level: none
    assert temporal.strength_lift(weak, 2.0, limit, tuning) < weak  # strength back: the lift goes back down
    assert temporal.strength_lift(0.0, 1.5, limit, temporal.Tuning(strength_floor=0.0)) == 0.0  # no floor
    assert temporal.strength_lift(0.9, 0.1, limit, tuning) == 1.0 - tuning.damping  # at most a full step

    steps = [_lifted_steps(lift, tuning) for lift in (0.0, weak)]
    inner = (..., slice(10, -10))
    carried = steps[0].confidence[inner] > 0.99
    assert carried.float().mean() > 0.5 and (steps[0].confidence == 0).any()
    still, lifted = steps[0].fine_step_mask[inner], steps[1].fine_step_mask[inner]
    assert torch.allclose(lifted[carried], still[carried] + weak, atol=0.02)  # lifted over the carried pattern
    assert (lifted >= still).all()
    fresh = steps[0].confidence == 0
    assert torch.equal(steps[1].fine_step_mask[fresh], steps[0].fine_step_mask[fresh])  # full steps stay full
    assert torch.equal(steps[1].step_mask, steps[0].step_mask)  # the coarse octaves stay damped


def test_the_lift_reaches_only_where_the_renders_noise_is_new():
    """With lift_noise, a carried pixel takes the lift by how much of its
    render's fine noise is new: all of it on a noisy render, none on a clean one."""
    tuning = temporal.Tuning(strength_floor=0.95, lift_noise=0.04)
    inner = (..., slice(10, -10))
    for noise, share in ((0.0, 0.0), (0.15, 1.0)):
        still, lifted = (_lifted_steps(lift, tuning, noise) for lift in (0.0, 0.2))
        carried = still.confidence[inner] > 0.99
        assert carried.float().mean() > 0.3
        gained = (lifted.fine_step_mask - still.fine_step_mask)[inner][carried]
        assert gained.mean() == pytest.approx(0.2 * share, abs=0.01), noise


def _lifted_steps(lift: float, tuning: temporal.Tuning, noise: float = 0.0) -> temporal.Prepared:
    """A carried frame's steps when the frame before left ``lift``, its render
    with uniform noise of amplitude ``noise`` that the previous render had not."""
    pictures = _moving_pictures(2)
    src0, src1 = image_tensor(pictures[0].pixels), image_tensor(pictures[1].pixels)
    vectors0, vectors1 = image_tensor(pictures[0].vectors), image_tensor(pictures[1].vectors)
    grain = noise * (2 * torch.rand(src1.shape, generator=torch.Generator().manual_seed(0)) - 1)
    dream0 = (src0 + 0.2 * torch.sin(torch.arange(128) / 3)).clamp(0, 1)
    previous = temporal.Previous(source=src0, dream=dream0, vectors=vectors0, lift=lift)
    return temporal.prepare("vectors", (src1 + grain).clamp(0, 1), vectors1, previous, tuning)


def test_a_sequence_holds_its_carried_dreams_to_the_first_frames_strength(lite0):
    """The first frame sets the limit; a carried frame over it lowers the
    next frame's regrowth, one under it keeps it whole; frames dreamed
    alone are not measured at all."""
    pictures = _moving_pictures(3)
    settings = DreamSettings(layer="block6", temporal="vectors", config=DreamConfig(octaves=2, iterations=4))
    sequence = SequenceDreamer()
    sequence.dream(lite0, pictures[0], settings)
    first = sequence.previous
    src = image_tensor(pictures[0].pixels)
    objective = sequence.objective(lite0, settings, None)
    strength = lite0.score(first.dream, objective, settings.config) / lite0.score(src, objective, settings.config)
    assert strength > 1.05 and first.gain == 1.0
    assert first.strength_limit == pytest.approx(temporal.STRENGTH_LIMIT * strength, rel=1e-4)
    sequence.previous.strength_limit = 1.0  # as if the first frame had not raised the objective at all
    sequence.dream(lite0, pictures[1], settings)
    assert sequence.previous.strength_limit == 1.0 and sequence.previous.gain == 0.0
    sequence.previous.strength_limit = 100.0
    sequence.dream(lite0, pictures[2], settings)
    assert sequence.previous.gain == 1.0
    last = sequence.previous  # the detail it carries on, kept at twice the size, shrinks back to the dream's own
    assert last.fine_detail.shape[-2:] == (2 * src.shape[-2], 2 * src.shape[-1])
    assert torch.allclose(F.avg_pool2d(last.fine_detail, 2), last.dream - last.source, atol=1e-5)

    alone = SequenceDreamer()
    alone.dream(lite0, pictures[0], DreamSettings(layer="block6", temporal="none", config=settings.config))
    assert alone.previous.strength_limit is None and alone.previous.fine_detail is None


def test_blend_keeps_the_dream_only_where_the_render_stayed():
    pictures = _moving_pictures(2, shift=6)
    src0, src1 = image_tensor(pictures[0].pixels), image_tensor(pictures[1].pixels)
    dream0 = (src0 + 0.2 * torch.sin(torch.arange(128) / 3)).clamp(0, 1)
    still = temporal.prepare("blend", src0, None, temporal.Previous(source=src0, dream=dream0))
    assert still.confidence.min() > 0.99 and torch.allclose(still.base, dream0, atol=1e-5)
    panned = temporal.prepare("blend", src1, None, temporal.Previous(source=src0, dream=dream0))
    assert panned.confidence.mean() < still.confidence.mean()  # a pan: the dream is not stuck to the screen


def test_flow_follows_a_surface_under_noise_that_stays_on_the_screen():
    """A path tracer with a fixed seed leaves the same noise on every frame:
    the flow must follow the surface moving 2 px left under it, not the
    noise (unsmoothed, DIS read -1.37 px here)."""
    h, w = 96, 128
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)

    def surface(shift):
        x = xs - shift
        return 0.5 + 0.1 * np.sin(2 * np.pi * x / 23) * np.cos(2 * np.pi * ys / 17) + 0.08 * np.sin(
            2 * np.pi * (x + ys) / 31)

    noise = np.random.default_rng(0).uniform(-0.1, 0.1, (h, w)).astype(np.float32)
    first, second = (np.repeat((surface(s) + noise)[..., None], 3, axis=-1) for s in (0, 2))
    flow = temporal.estimate_flow(image_tensor(first), image_tensor(second))[0, :, 16:-16, 16:-16]
    assert abs(float(flow[0].mean()) + 2.0) < 0.15 and abs(float(flow[1].mean())) < 0.15


def _shifted_pattern(height, width, shift):
    """A smooth grey pattern and the same moved ``shift`` px right: the
    second frame's pixels were ``shift`` px to the left in the first."""
    import cv2

    rng = np.random.default_rng(1)
    big = cv2.resize(rng.random((height // 10, (width + shift) // 10)).astype(np.float32), (width + shift, height),
                     interpolation=cv2.INTER_CUBIC).clip(0, 1)
    first, second = (np.repeat(big[:, x0:x0 + width, None], 3, axis=-1) for x0 in (shift, 0))
    return image_tensor(first), image_tensor(second)


def test_flow_on_a_large_frame_is_estimated_smaller_and_scaled_back():
    h, w = 288, 512  # above TUNING.flow_full_size_up_to
    assert temporal.motion.flow_scale(h, w) == temporal.TUNING.flow_scale < 1
    first, second = _shifted_pattern(h, w, 6)
    flow = temporal.estimate_flow(first, second)
    assert flow.shape == (1, 2, h, w)
    inner = flow[0, :, 24:-24, 24:-24]
    assert abs(float(inner[0].mean()) + 6.0) < 0.2 and abs(float(inner[1].mean())) < 0.2
    assert float((inner[0] + 6.0).abs().quantile(0.9)) < 0.5


def test_flow_on_a_small_frame_is_estimated_at_full_size_as_before():
    import cv2

    h, w = 144, 256
    assert temporal.motion.flow_scale(h, w) == 1.0
    first, second = _shifted_pattern(h, w, 3)
    flow = temporal.estimate_flow(first, second)

    def grey(rgb):  # the flow's input as it always was: 8-bit luma, smoothed at full size
        return cv2.GaussianBlur(temporal.motion._grey8(rgb), (0, 0), temporal.FLOW_SMOOTHING)

    before = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(grey(second), grey(first), None)
    assert torch.equal(flow[0], torch.from_numpy(before).permute(2, 0, 1))


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


def test_warp_error_is_the_mean_squared_rgb_distance_over_the_unoccluded_pixels():
    """A frame moved one pixel right, then changed by 0.1 in one channel on
    half the pixels that stay in view and 0.5 on the occluded ones: those
    do not count; the squared distance sums over the channels."""
    first = torch.rand((1, 3, 8, 16), generator=torch.Generator().manual_seed(1))
    second = torch.roll(first, 1, dims=-1)
    second[:, 0, :4] += 0.1
    second[:, :, :, :2] += 0.5
    flow = torch.zeros((1, 2, 8, 16))
    flow[:, 0] = -1.0  # pixel x of the second frame was at x - 1
    mask = torch.ones((1, 1, 8, 16))
    mask[..., :2] = 0.0
    expected = 0.1 ** 2 / 2
    assert temporal.warp_error([first, second], [flow], [mask]) == pytest.approx(expected, rel=1e-4)
    assert temporal.warp_error([first, first], [torch.zeros_like(flow)], [mask]) == 0.0


def test_the_pattern_flicker_reads_a_perfect_move_as_still_and_a_boil_as_a_boil():
    """Fine detail moved by an exact half pixel reads as a change at full
    detail (no warp moves a 2 px period exactly: the measure's floor) but
    next to none at the pattern's scale; a pattern drawn afresh (a boil)
    reads as a change on both."""
    noise = torch.rand((1, 3, 48, 64), generator=torch.Generator().manual_seed(3))
    other = torch.rand((1, 3, 48, 64), generator=torch.Generator().manual_seed(4))
    pattern, boiled = (temporal.gaussian_blur(x, 0.5) for x in (noise, other))  # detail at 2-3 px
    flow = torch.zeros((1, 2, 48, 64))
    flow[:, 0] = -0.5  # pixel x of the second frame was at x - 0.5
    mask = torch.zeros((1, 1, 48, 64))
    mask[..., 8:-8, 8:-8] = 1.0  # away from where the Fourier shift wraps round
    moved = [pattern, temporal.moved_exactly(pattern, 0.5, 0.0)]
    drawn_afresh = [pattern, boiled]
    full, at_scale = (measure(moved, [flow], [mask]) for measure in (temporal.flicker, temporal.pattern_flicker))
    full_boil, at_scale_boil = (measure(drawn_afresh, [flow], [mask])
                                for measure in (temporal.flicker, temporal.pattern_flicker))
    assert full > 0.15 * full_boil  # the floor: a perfect move reads a fifth of a boil at full detail
    assert at_scale < 0.03 * at_scale_boil


def _saturated(image: torch.Tensor, factor: float) -> torch.Tensor:
    y = image.mean(dim=1, keepdim=True)
    return (y + factor * (image - y)).clamp(0, 1)


def _gains(dream: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    return temporal.anchor_gains(temporal.colour_anchor(dream, source))


def test_anchor_pulls_drifting_colours_back_gently():
    torch.manual_seed(0)
    source = torch.rand((1, 3, 32, 32)) * 0.5 + 0.25
    anchor = temporal.colour_anchor(_saturated(source, 1.2), source)  # fresh: same brightness, more saturated
    drifted = (source * 1.3).clamp(0, 1)  # a later frame that came out too bright and too saturated
    fixed = temporal.anchor_colours(drifted, source, anchor)
    target = temporal.anchor_gains(anchor)
    gains_before = _gains(drifted, source)
    gains_after = _gains(fixed, source)
    assert ((gains_after - target).abs() < (gains_before - target).abs()).all()
    assert (fixed - drifted).abs().max() < 0.2  # at most a 10% step per frame: no popping
    same = temporal.anchor_colours(drifted, source, temporal.colour_anchor(drifted, source))
    assert torch.allclose(same, drifted, atol=1e-5)  # already on target: untouched


def test_anchor_corrects_only_the_carried_pattern():
    """A fresh dream (e.g. an object entering) is neither measured nor
    corrected: it cannot have drifted, and must not shift the rest."""
    torch.manual_seed(1)
    source = torch.rand((1, 3, 32, 64)) * 0.5 + 0.25
    carried = torch.zeros((1, 1, 32, 64))
    carried[..., :32] = 1.0
    dream = source.clone()
    dream[..., :32] = (source[..., :32] * 1.3).clamp(0, 1)  # the carried half drifted brighter
    dream[..., 32:] = 1.0  # a white object entered the other half
    fixed = temporal.anchor_colours(dream, source, temporal.colour_anchor(source, source), carried=carried)
    assert torch.equal(fixed[..., 32:], dream[..., 32:])
    left = (..., slice(0, 32))
    before = _gains(dream[left], source[left])[0]
    after = _gains(fixed[left], source[left])[0]
    assert abs(after - 1) < abs(before - 1)  # pulled back towards the gains it had when fresh


def test_an_object_carried_in_keeps_its_own_colours_and_leaves_the_rest_alone():
    """The colours a pattern is held to travel with it: an object that
    entered with a more saturated dream than the room's is carried on as it
    was dreamed, and the room is not shifted towards it (a frame-wide target
    would have moved both)."""
    torch.manual_seed(2)
    source = torch.rand((1, 3, 32, 64)) * 0.5 + 0.25
    room = _saturated(source, 1.1)  # frame 1: the room, dreamed afresh
    anchor = temporal.colour_anchor(room, source)
    dream = room.clone()
    dream[..., :24] = _saturated(source[..., :24], 1.6)  # frame 2: a colourful object enters on the left
    entered = torch.ones((1, 1, 32, 64))
    entered[..., :24] = 0.0  # fresh there, carried elsewhere
    carried_on = temporal.next_anchor(dream, source, anchor, entered)
    everywhere = torch.ones((1, 1, 32, 64))
    # frame 3: all of it carried (the scene stood still) and nothing drifted: nothing to correct
    assert torch.allclose(temporal.anchor_colours(dream, source, carried_on, carried=everywhere), dream, atol=1e-5)
    shifted = temporal.anchor_colours(dream, source, anchor, carried=everywhere)  # the room's colours for all
    assert (shifted - dream).abs().amax() > 0.02


def _room(with_object: bool, count: int = 6, speed: int = 8) -> list[Picture]:
    """A still, greyish room; with ``with_object`` a saturated red box slides
    in from the left (exact vectors for its pixels)."""
    import cv2

    texture = np.random.default_rng(0).random((8, 16, 3)).astype(np.float32) * 0.3 + 0.35
    room = cv2.resize(texture, (128, 64), interpolation=cv2.INTER_CUBIC)
    room = 0.8 * room.mean(axis=2, keepdims=True) + 0.2 * room
    pictures = []
    for i in range(count):
        pixels, vectors = room.copy(), np.zeros((64, 128, 4), np.float32)
        if with_object:
            box = (slice(20, 44), slice(max(0, 8 * i - 16), max(0, 8 * i + 8)))
            pixels[box] = (0.9, 0.2, 0.3)
            vectors[box + (0,)] = vectors[box + (2,)] = -speed
        pictures.append(Picture(pixels, False, "uint8", vectors))
    return pictures


def test_an_object_carried_across_the_frame_leaves_the_rooms_colours_alone(lite0):
    """The far side of a room keeps its colours while a red box is carried in
    from the other side (with one colour target for the whole frame, the
    room got 22% more saturated within four frames)."""
    settings = DreamSettings(layer="block6", temporal="vectors", config=DreamConfig(octaves=2, iterations=4, seed=1))
    saturation = {}
    for with_object in (False, True):
        sequence = SequenceDreamer()
        dreams = [sequence.dream(lite0, picture, settings, frame=i + 1)
                  for i, picture in enumerate(_room(with_object))]
        saturation[with_object] = np.array([float(temporal.brightness_saturation(
            image_tensor(dream.pixels)[..., 80:])[1]) for dream in dreams])
    ratio = saturation[True] / saturation[False]  # the box's own pull on the far side, from the first frame on
    assert np.abs(ratio / ratio[0] - 1).max() < 0.02, ratio


def test_both_ways_of_blurring_agree():
    """The CPU blurs by shifted sums, a GPU by two convolutions: one result."""
    from dream_core.frame.temporal import blur

    image = torch.rand(2, 3, 37, 51)
    weights = (0.05, 0.25, 0.4, 0.25, 0.05)
    shifted, convolved = blur._blur_shifted(image, weights), blur._blur_convolved(image, weights)
    assert shifted.shape == convolved.shape == image.shape
    assert torch.allclose(shifted, convolved, atol=1e-6)
    flat = torch.full((1, 1, 9, 9), 0.3)
    assert torch.allclose(blur._blur_convolved(flat, weights), flat)  # edges repeated, not zeros
    mirrored = blur._blur_shifted(image, weights, "mirror"), blur._blur_convolved(image, weights, "mirror")
    assert torch.allclose(*mirrored, atol=1e-6)


def test_both_ways_of_gathering_a_warps_taps_agree():
    """The CPU gathers a row's taps one by one, a GPU all at once: one result."""
    from dream_core.frame.temporal import warping

    flat = torch.rand(5, 300)
    indices = torch.randint(0, 300, (4, 300), dtype=torch.int32)
    weights = torch.rand(1, 4, 300)
    at_once = warping._row_at_once(flat, indices, weights)
    assert torch.allclose(warping._row_tap_by_tap(flat, indices, weights), at_once, atol=1e-6)
    assert torch.allclose(at_once[:, 7], (flat[:, indices[:, 7].long()] * weights[0, :, 7]).sum(dim=1))


def _next_fine_detail(prepared, dream, source):
    return temporal.next_fine_detail(dream, source, prepared.carried, prepared.carried_fine, prepared.confidence)


def test_a_fine_pattern_survives_many_sub_pixel_moves():
    """Carried at twice the size (by the B-spline with the Vector pass), a
    pattern of 4-5 px keeps nearly all of its amplitude over 20 frames of a
    slow drift (0.98; by Catmull-Rom at twice the size 0.84); warped at its
    own size every frame it would keep a fifth."""
    h, w = 64, 96
    source = torch.full((1, 3, h, w), 0.5)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    pattern = (0.1 * torch.sin(2 * np.pi * xs / 4.3) * torch.sin(2 * np.pi * ys / 5.1)).expand(1, 3, h, w)
    vectors = torch.zeros(1, 4, h, w)
    vectors[:, 0] = vectors[:, 2] = 0.3  # 0.3 px across, 0.2 px down a frame
    vectors[:, 1] = vectors[:, 3] = -0.2
    previous = temporal.Previous(source=source, dream=source + pattern, vectors=vectors)
    own_size = pattern
    for _ in range(20):
        prepared = temporal.prepare("vectors", source, vectors, previous)
        dream = prepared.base  # no ascent: only what the carry keeps
        previous = temporal.Previous(source=source, dream=dream, vectors=vectors,
                                     fine_detail=_next_fine_detail(prepared, dream, source))
        own_size, _ = temporal.warp(own_size, temporal.vectors_to_flow(vectors))
    inner = (..., slice(12, -12), slice(12, -12))
    kept = float((dream - source)[inner].std() / pattern[inner].std())
    kept_own_size = float(own_size[inner].std() / pattern[inner].std())
    assert kept > 0.9 and kept > 3 * kept_own_size, (kept, kept_own_size)


def test_a_still_scene_carries_its_dream_exactly():
    """No motion: every frame starts from the last dream itself, however the
    chain began (a resumed one has no detail at twice the size yet)."""
    source = torch.rand(1, 3, 40, 56) * 0.5 + 0.25
    dream = (source + 0.1 * torch.randn_like(source)).clamp(0, 1)
    still = torch.zeros(1, 4, 40, 56)
    previous = temporal.Previous(source=source, dream=dream, vectors=still)
    for _ in range(3):
        prepared = temporal.prepare("vectors", source, still, previous)
        assert torch.allclose(prepared.base, previous.dream, atol=1e-5)
        dream = (prepared.base + 0.01 * torch.randn_like(source)).clamp(0, 1)  # this frame's own change
        previous = temporal.Previous(source=source, dream=dream, vectors=still,
                                     fine_detail=_next_fine_detail(prepared, dream, source))


def test_the_temporal_modules_import_one_another_without_a_cycle():
    """carry.py composes the others, which take and give tensors: none of
    them imports it, not even for its types, and no import runs in a circle."""
    import ast
    import graphlib
    import os

    folder = os.path.dirname(temporal.__file__)
    imports = {}
    for name in os.listdir(folder):
        if name.endswith(".py") and name != "__init__.py":
            tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
            imports[name[:-3]] = {node.module for node in ast.walk(tree)
                                  if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    assert [module for module, names in imports.items() if "carry" in names] == []
    graphlib.TopologicalSorter(imports).prepare()  # raises CycleError on a cycle


def test_the_tuning_table_in_the_docs_is_the_codes_row_for_row():
    """docs/TEMPORAL.md's tuning table has one row per Tuning field, as
    tuning.py declares it: its current value, why, and what chose it."""
    import dataclasses
    import os
    import re

    from conftest import ROOT

    page = open(os.path.join(ROOT, "docs", "TEMPORAL.md"), encoding="utf-8").read()
    section = page.split("\n## Tuning table\n", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*\|$", section, re.MULTILINE)}
    fields = dataclasses.fields(temporal.TUNING)
    assert sorted(rows) == sorted(f.name for f in fields)
    for f in fields:
        expected = (f"| `{f.name}` | `{getattr(temporal.TUNING, f.name)!r}` | {f.metadata['why']} | "
                    f"{f.metadata['chosen_by']} |")
        assert rows[f.name] == expected, f"docs/TEMPORAL.md's row for {f.name} should read:\n{expected}"
    assert all(f.metadata["why"] and f.metadata["chosen_by"] for f in fields)


def test_a_tuning_reaches_the_carry():
    """A sweep's table (``--tune``) changes what the carry does; the default
    one is TUNING, and a spec names only fields of it."""
    assert temporal.TUNING.with_overrides("damping=0.5, sharp_from=vectors+flow") == temporal.Tuning(
        damping=0.5, sharp_from=("vectors", "flow"))
    assert temporal.TUNING.with_overrides("stretch_from=").stretch_from == ()
    assert temporal.Tuning(damping=0.5).changes() == {"damping": 0.5}
    for spec in ("dampening=0.5", "damping", "damping=lots"):
        with pytest.raises(ValueError):
            temporal.TUNING.with_overrides(spec)
    pictures = _moving_pictures(2)
    src0, src1 = image_tensor(pictures[0].pixels), image_tensor(pictures[1].pixels)
    vectors0, vectors1 = image_tensor(pictures[0].vectors), image_tensor(pictures[1].vectors)
    carries = [temporal.TemporalCarry(tuning) for tuning in (temporal.TUNING, temporal.Tuning(damping=0.5))]
    prepared = []
    for carry in carries:
        carry.resume(src0, (src0 + 0.2 * torch.sin(torch.arange(128) / 3)).clamp(0, 1), vectors0)
        prepared.append(carry.prepare("vectors", src1, vectors1))
    inner = (..., slice(10, -10))
    assert torch.equal(prepared[0].base, prepared[1].base)
    assert prepared[0].step_mask[inner].mean() < 0.3 < prepared[1].step_mask[inner].mean()
    assert repr(carries[1]) == "TemporalCarry(holding a 128x64 frame; damping=0.5)"
    fresh = [temporal.TemporalCarry(tuning) for tuning in (temporal.TUNING, temporal.Tuning(strength_limit=2.0))]
    first = [carry.advance(carry.prepare("vectors", src1, vectors1), src1, src1, vectors1, strength=1.5)
             for carry in fresh]
    assert [p.strength_limit for p in first] == [temporal.TUNING.strength_limit * 1.5, 3.0]
