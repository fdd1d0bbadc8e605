import numpy as np
import pytest
import torch
from conftest import to_tensor

from dream_core import dream
from dream_core.config import DreamConfig, Progress
from dream_core.engine import resolve_device
from dream_core.engine.tiling import tile_grid, tiled_gradient
from dream_core.frame.colour import LUMA_WEIGHTS

QUICK = dict(octaves=2, iterations=3, device="cpu")


def luma(pixels: np.ndarray) -> np.ndarray:
    return pixels @ np.array(LUMA_WEIGHTS, np.float32)


def test_dream_changes_the_image_and_raises_the_objective(lite0, coffee):
    objective = lite0.objective()
    out = lite0.run(to_tensor(coffee), objective, DreamConfig(octaves=3, iterations=5))
    assert out.shape == (1, 3, 96, 128)
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert (out - to_tensor(coffee)).abs().mean() > 0.01
    assert lite0.score(out, objective) > 1.25 * lite0.score(to_tensor(coffee), objective)


def test_same_seed_is_bit_identical_on_cpu_and_other_seeds_differ(coffee):
    a = dream(coffee, seed=7, **QUICK)
    b = dream(coffee, seed=7, **QUICK)
    c = dream(coffee, seed=8, **QUICK)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_progress_callback_sees_every_step(coffee):
    seen: list[Progress] = []
    dream(coffee, callback=seen.append, **QUICK)
    assert [(p.octave, p.iteration) for p in seen] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert seen[-1].fraction == 1.0


def test_alpha_is_untouched_and_masks_out_pixels(coffee):
    alpha = np.zeros(coffee.shape[:2], np.float32)
    alpha[:, 64:] = 1.0
    rgba = np.dstack([coffee, alpha])
    out = dream(rgba, mask="alpha", **QUICK)
    assert out.shape == rgba.shape
    assert np.array_equal(out[..., 3], alpha)
    # a zero mask: the masked half keeps the source pixels (octave resampling aside)
    left = np.abs(out[:, :60, :3] - coffee[:, :60]).mean()
    right = np.abs(out[:, 68:, :3] - coffee[:, 68:]).mean()
    assert left < 0.2 * right


def test_the_step_is_normalised_over_the_pixels_that_dream():
    """The mean |gradient| a step is scaled by counts only the pixels whose
    step is not 0; where every pixel steps it is the plain mean, with no
    per-pixel weights to apply each step."""
    from dream_core.engine.dreamer import OctaveSteps, _mean_abs

    grad = torch.randn(1, 3, 20, 30)
    half = torch.zeros(1, 1, 20, 30)
    half[..., 15:] = 0.5
    steps = OctaveSteps.of(half)
    assert torch.allclose(_mean_abs(grad, steps.averaging), grad[..., 15:].abs().mean())
    everywhere = OctaveSteps.of(half + 0.01)
    assert everywhere.averaging is None and everywhere.mask is not None
    assert OctaveSteps.of(None) == (None, None, None)
    assert float(_mean_abs(grad, OctaveSteps.of(torch.zeros(1, 1, 20, 30)).averaging)) == 0.0  # nothing dreams


def test_keep_colors_keeps_the_source_chroma(coffee):
    out = dream(coffee, keep_colors=True, **QUICK)
    chroma_in = coffee - luma(coffee)[..., None]
    chroma_out = out - luma(out)[..., None]
    unclipped = (out > 0.01).all(-1) & (out < 0.99).all(-1)
    assert np.abs(chroma_out - chroma_in)[unclipped].max() < 1e-4
    assert np.abs(luma(out) - luma(coffee)).mean() > 0.005


def test_grey_images_come_back_grey(coffee):
    """A one-channel image is dreamed as RGB and comes back as that dream's luma."""
    grey = luma(coffee)[..., None]
    out = dream(grey, **QUICK)
    assert out.shape == grey.shape
    assert np.abs(out - grey).mean() > 0.005  # dreamed, not passed through
    as_rgb = dream(np.repeat(grey, 3, axis=-1), **QUICK)
    assert np.allclose(out[..., 0], luma(as_rgb), atol=1e-5)


def test_linear_hdr_round_trip_keeps_highlights():
    rng = np.random.default_rng(0)
    hdr = rng.random((64, 64, 3), dtype=np.float32) * 4.0  # highlights up to 4.0
    same = dream(hdr, linear=True, iterations=0, octaves=2, device="cpu")
    assert np.allclose(same, hdr, rtol=1e-4, atol=1e-5)
    dreamed = dream(hdr, linear=True, octaves=1, iterations=2, device="cpu")
    assert dreamed.max() > 1.5  # still HDR


def test_tiled_gradient_matches_untiled_away_from_borders(lite0, coffee):
    """The mechanism behind seamless tiling: 12 aligned tiles with 32 px of
    context give nearly the whole image's gradient (borders see reflected
    context instead of the network's zero padding)."""
    import skimage.data

    img = to_tensor(skimage.data.coffee()[:192, :256].astype(np.float32) / 255).contiguous()
    value = lite0._value_fn(lite0.objective("block6"))
    whole, _ = tiled_gradient(img, value, tile_grid(192, 256, 0, 0), 1)
    grid = tile_grid(192, 256, 128, 32)
    assert grid.rows * grid.cols == 12
    tiled, _ = tiled_gradient(img, value, grid, 5)
    inner = (..., slice(32, -32), slice(32, -32))
    corr = torch.corrcoef(torch.stack([whole[inner].flatten(), tiled[inner].flatten()]))[0, 1]
    assert corr > 0.97


def test_tiled_dream_is_equivalent_to_untiled(lite0):
    import skimage.data

    img = to_tensor(skimage.data.coffee()[:192, :256].astype(np.float32) / 255).contiguous()
    objective = lite0.objective("block6")
    base = DreamConfig(octaves=2, iterations=4, jitter=8)
    whole = lite0.run(img, objective, base.replace(tile=0))
    tiled = lite0.run(img, objective, base.replace(tile=128))
    s_whole, s_tiled = lite0.score(whole, objective), lite0.score(tiled, objective)
    assert abs(s_tiled - s_whole) / s_whole < 0.05
    change_whole, change_tiled = (whole - img).abs().mean(), (tiled - img).abs().mean()
    assert abs(change_tiled - change_whole) / change_whole < 0.15


@pytest.mark.parametrize("tile", [0, 96])
def test_scoring_images_together_gives_each_its_own_score(lite0, coffee, tile):
    """A sequence scores a dream and its render in one pass; tiled or not,
    each keeps the score it has alone."""
    objective, config = lite0.objective(), DreamConfig(tile=tile)
    render = to_tensor(coffee)
    dreamed = lite0.run(render, objective, DreamConfig(octaves=1, iterations=3))
    together = lite0.scores(torch.cat([dreamed, render]), objective, config)
    alone = [lite0.score(dreamed, objective, config), lite0.score(render, objective, config)]
    assert together == pytest.approx(alone, rel=1e-4) and together[0] > together[1]


@pytest.mark.parametrize("tile", [0, 64])
def test_images_dreamed_together_each_come_out_as_dreamed_alone(lite0, coffee, tile):
    """A batch of frames (chunks of a shot in lockstep) is one pass through
    the network, but each frame is stepped by its own gradient's mean and
    its own step mask: each equals its dream alone, up to float rounding
    (a short dream: over many steps the ascent carries any rounding on to
    other fine detail of the same strength, as another thread count does);
    and in a batch of one size, whatever its partners, exactly the same."""
    objective, config = lite0.objective(), DreamConfig(octaves=2, iterations=2, tile=tile, tile_margin=16)
    images = torch.cat([to_tensor(coffee[:48, :64]), to_tensor(coffee[48:, 64:]), to_tensor(coffee[::2, ::2])])
    masks = torch.ones(3, 1, 48, 64)
    masks[1, :, :, 32:] = 0.0  # a still half: the mean |gradient| is over the half that dreams
    masks[2] = 0.3

    def own(step_mask, i):  # image i's share of a batch's step mask [N or 1, 1, H, W]
        if callable(step_mask):
            return lambda remaining: own(step_mask(remaining), i)
        return step_mask if step_mask is None or len(step_mask) == 1 else step_mask[i:i + 1]

    for step_mask in (None, masks, lambda remaining: masks if remaining else masks[:1] * 0.5):
        together = lite0.run(images, objective, config, step_mask=step_mask)
        for i in range(3):
            alone = lite0.run(images[i:i + 1], objective, config, step_mask=own(step_mask, i))
            assert (together[i] - alone[0]).abs().max() < 1e-4, (i, step_mask)
        if step_mask is masks:
            assert (together[1, :, :, 40:] == images[1, :, :, 40:]).all()
            assert (together[1, :, :, :32] - images[1, :, :, :32]).abs().mean() > 0.01
    others = torch.cat([images[1:2], images.flip(-1)[:1], images[:1]])
    other_masks = torch.cat([masks[1:2], torch.ones(1, 1, 48, 64), masks[:1]])
    again = lite0.run(others, objective, config, step_mask=other_masks)
    assert torch.equal(again[0], lite0.run(images, objective, config, step_mask=masks)[1])


def test_batched_bf16_path_stays_within_two_percent_of_fp32(lite0, coffee):
    """The GPU fast path's pieces (tile batches, bf16 autocast), run on CPU."""
    objective = lite0.objective("block6")
    img = to_tensor(coffee)
    ref = lite0.run(img, objective, DreamConfig(octaves=1, iterations=3, tile=0, precision="fp32"))
    fast = lite0.run(img, objective, DreamConfig(octaves=1, iterations=3, tile=0, precision="bf16"))
    s_ref, s_fast = lite0.score(ref, objective), lite0.score(fast, objective)
    assert abs(s_fast - s_ref) / s_ref < 0.02


@pytest.mark.parametrize("field, value", [("octaves", 0), ("octave_scale", 0.5), ("iterations", -1),
                                          ("step", 5.0), ("tile", -3), ("precision", "fp8")])
def test_out_of_range_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        DreamConfig(**{field: value})


def test_tiny_and_nonfinite_images_are_refused(lite0, coffee):
    with pytest.raises(ValueError, match="at least 32 px"):
        dream(np.zeros((1, 1000, 3), np.float32), device="cpu")
    bad = coffee.copy()
    bad[5, 5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dream(bad, device="cpu")


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


class RunsOutOfMemory(torch.nn.Module):
    """A real network that raises the out-of-memory error CUDA raises
    whenever an input holds more than ``limit`` pixels (MPS raises a plain
    RuntimeError saying so; both are covered)."""

    def __init__(self, net: torch.nn.Module, limit: int, mps_style: bool = False) -> None:
        super().__init__()
        self.net, self.limit, self.mps_style = net, limit, mps_style
        self.refused = 0

    def forward(self, x, layers):
        if x.shape[-2] * x.shape[-1] > self.limit:
            self.refused += 1
            if self.mps_style:
                raise RuntimeError("MPS backend out of memory (MPS allocated: 7.9 GB)")
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x, layers)


@pytest.mark.parametrize("mps_style", [False, True])
@pytest.mark.slow
def test_out_of_memory_falls_back_to_smaller_tiles_and_the_frame_comes_out(coffee, mps_style, caplog):
    from dream_core.engine import Dreamer

    dreamer = Dreamer("lite0", device="cpu")
    dreamer.net = RunsOutOfMemory(dreamer.net, limit=180 * 180, mps_style=mps_style)
    image = torch.from_numpy(np.ascontiguousarray(np.tile(coffee, (3, 3, 1))[:288, :384])).permute(2, 0, 1)[None]
    config = DreamConfig(octaves=2, iterations=2, tile=0, tile_margin=16)  # the whole frame at once: too big
    out = dreamer.run(image, dreamer.objective(), config)
    assert out.shape == image.shape and torch.isfinite(out).all()
    assert dreamer.net.refused == 1 and dreamer.tile_cap == 274 // 2  # the first octave's 274 px side, halved
    assert (out - image).abs().mean() > 0.005  # dreamed, not passed through
    assert "out of memory with 274 px tiles on cpu; dreaming on with 137 px tiles" in caplog.text
    dreamer.run(image, dreamer.objective(), config)
    assert dreamer.net.refused == 1  # later frames start from the tiles that fitted


def test_out_of_memory_at_the_smallest_tiles_is_an_error(coffee):
    from dream_core.engine import Dreamer

    dreamer = Dreamer("lite0", device="cpu")
    dreamer.net = RunsOutOfMemory(dreamer.net, limit=10)
    with pytest.raises(torch.OutOfMemoryError):
        dreamer.run(torch.from_numpy(coffee).permute(2, 0, 1)[None], dreamer.objective(),
                    DreamConfig(octaves=1, iterations=1))
    assert dreamer.tile_cap == Dreamer.MIN_TILE


def test_rocm_and_mps_run_eager_in_float32(monkeypatch):
    """CUDA graphs and bf16 are for NVIDIA's CUDA builds; a ROCm build (``torch.version.hip``) and MPS run eager."""
    from dream_core.engine.device import uses_cuda_graphs

    monkeypatch.setattr(torch.version, "hip", None)
    assert uses_cuda_graphs(torch.device("cuda")) and not uses_cuda_graphs(torch.device("mps"))
    monkeypatch.setattr(torch.version, "hip", "6.4.0")
    assert not uses_cuda_graphs(torch.device("cuda"))
    assert not uses_cuda_graphs(torch.device("cpu"))


def test_cpu_threads_leave_room_on_a_shared_machine(monkeypatch):
    """Half the cores this process may use, unless told (docs/BENCHMARKS.md: on busy cores, threads that wait on
    each other made a frame many times slower than one thread)."""
    import os

    from dream_core.engine.device import cpu_threads
    from dream_core.errors import BadSetting

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert cpu_threads() == max(1, cores // 2)
    assert cpu_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert cpu_threads() == 5 and cpu_threads(2) == 2
    with pytest.raises(BadSetting, match="threads must be 0"):
        cpu_threads(-1)
