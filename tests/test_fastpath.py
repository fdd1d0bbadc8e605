"""The GPU fast path's logic, exercised on the CPU with the CUDA-only
pieces switched off; and, where a CUDA GPU exists, the real thing."""
import numpy as np
import pytest
import torch
from conftest import cli, to_tensor

from dream_core.config import DreamConfig
from dream_core.engine import Dreamer


def test_compiled_path_matches_eager(coffee):
    """torch.compile's wrapper (with the 'eager' backend on CPU: same graph
    capture, no code generation) gives the uncompiled result exactly."""
    config = DreamConfig(octaves=2, iterations=2, tile=64, tile_margin=0)
    img = to_tensor(coffee)
    plain = Dreamer("lite0", device="cpu", compile="off")
    compiled = Dreamer("lite0", device="cpu", compile="eager", wait_for_compile=True)  # compiled from the first step
    a = plain.run(img, plain.objective("block6"), config)
    b = compiled.run(img, compiled.objective("block6"), config)
    assert torch.equal(a, b)


def test_batched_tiles_match_one_by_one(lite0, coffee):
    img = to_tensor(coffee)
    objective = lite0.objective("block6")
    one = lite0.run(img, objective, DreamConfig(octaves=1, iterations=2, tile=64, tile_margin=0, tile_batch=1))
    many = lite0.run(img, objective, DreamConfig(octaves=1, iterations=2, tile=64, tile_margin=0, tile_batch=6))
    assert torch.allclose(one, many, atol=1e-4)


def test_automatic_tiles(lite0):
    auto = DreamConfig()
    assert lite0.tile_for(1080, 1920, auto) == 512  # CPU: bounded memory
    assert lite0.tile_for(1080, 1920, auto.replace(tile=0)) == 0
    gpu = Dreamer.__new__(Dreamer)
    gpu.device = torch.device("cuda")  # the rule only, no GPU needed
    assert gpu.tile_for(1080, 1920, auto) == 0  # whole frame: no margin FLOPs
    assert gpu.tile_for(2160, 3840, auto) == 1024  # 4K: bounded memory


@pytest.mark.slow
def test_gpu_bench_runs_end_to_end_on_cpu():
    result = cli("bench", "--gpu", "--device", "cpu", "--sizes", "64x48", "--iterations", "1", "--repeats", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    for word in ("googlenet", "lite0", "naive", "engine", "uncompiled", "first frame", "server", "TFLOP/s",
                 "a shot, per frame: none", "vectors", "flow"):
        assert word in result.stdout
    only = cli("bench", "--gpu", "--device", "cpu", "--sizes", "64x48", "--iterations", "1", "--repeats", "1",
               "--models", "lite0", "--no-server")
    assert only.returncode == 0, only.stderr[-2000:]
    assert "lite0" in only.stdout and "googlenet" not in only.stdout and "server" not in only.stdout


def test_the_gpu_bench_shot_moves_as_its_vectors_say():
    """The temporal rows time a synthetic pan: its Vector pass must carry
    each frame onto the next, or vectors mode would time a broken chain."""
    from dream_core.engine import image_tensor
    from dream_core.frame import temporal
    from dream_core.tools.bench_gpu import panning_shot

    before, after = panning_shot(48, 32, 2)
    warped, inside = temporal.warp(image_tensor(before.pixels), temporal.vectors_to_flow(image_tensor(after.vectors)))
    error = ((warped - image_tensor(after.pixels)).abs() * inside).sum() / inside.sum() / 3
    assert inside.mean() > 0.9 and error < 1e-3, float(error)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fast_path_is_faithful():
    """bf16, channels_last, compiled graphs: final objective within 2% of fp32."""
    torch.manual_seed(0)
    img = torch.rand(1, 3, 540, 960, device="cuda")
    fast = Dreamer("googlenet", weights=None, device="cuda", wait_for_compile=True)  # the compiled graphs throughout
    ref = Dreamer("googlenet", weights=None, device="cuda", compile="off")
    ref.net.load_state_dict(fast.net.state_dict())
    objective = fast.objective("inception4c")
    config = DreamConfig(octaves=3, iterations=5)
    out_fast = fast.run(img, objective, config)
    out_ref = ref.run(img, objective, config.replace(precision="fp32"))
    s_fast = ref.score(out_fast, objective, config.replace(precision="fp32"))
    s_ref = ref.score(out_ref, objective, config.replace(precision="fp32"))
    assert abs(s_fast - s_ref) / s_ref < 0.02
    assert np.isfinite(out_fast.float().cpu().numpy()).all()


def _carry_chain(device: str, frames: int = 3) -> list:
    """A short chain of carried frames of a pan through the temporal pieces
    alone (no dream: a fixed change stands in for it), on ``device``."""
    from dream_core.engine import image_tensor
    from dream_core.frame import temporal
    from dream_core.tools.bench_gpu import panning_shot

    shot = [(image_tensor(p.pixels, device), image_tensor(p.vectors, device)) for p in panning_shot(64, 36, frames + 1)]
    change = (0.1 * torch.randn(1, 3, 36, 64, generator=torch.Generator().manual_seed(0))).to(device)
    source, vectors = shot[0]
    carry = temporal.TemporalCarry()
    carry.resume(source, (source + change).clamp(0, 1), vectors)
    chain = []
    for source, vectors in shot[1:]:
        p = carry.prepare("vectors", source, vectors)
        dream = carry.settle(p, (p.base + 0.3 * change).clamp(0, 1), source)
        previous = carry.advance(p, dream, source, vectors, strength=None)
        chain.append((p.base, p.step_mask, p.fine_step_mask, previous.fine_detail))
    return chain


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_carry_on_a_gpu_matches_the_cpu():
    """The GPU's code path (blurs as convolutions, weights made on the
    device, int32 gathers) carries a dream as the CPU does."""
    for cpu, gpu in zip(_carry_chain("cpu"), _carry_chain("cuda")):
        for a, b in zip(cpu, gpu):
            assert torch.allclose(a, b.cpu(), atol=1e-4), float((a - b.cpu()).abs().max())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_servers_frame_reaches_the_gpu_and_leaves_it_as_it_was():
    """Pinned float16 pixels made float32 on the device, and a carried state
    copied off it without waiting: bit for bit what the plain ways give."""
    from dream_core.engine.device import image_tensor, staged_pixels
    from dream_core.frame import carried_state
    from dream_core.frame.temporal import Previous
    from dream_core.serving.tasks import StateSnapshot

    pixels = np.random.default_rng(0).random((36, 52, 4)).astype(np.float16)
    staged = staged_pixels(pixels, torch.device("cuda"))
    assert staged.dtype == np.float16 and torch.from_numpy(staged).is_pinned()
    assert torch.equal(image_tensor(staged, torch.device("cuda")).cpu(), image_tensor(pixels.astype(np.float32)))
    previous = Previous(source=torch.rand(1, 3, 8, 8, device="cuda"),
                        dream=torch.rand(1, 3, 8, 8, device="cuda").bfloat16(),
                        reference=torch.rand(1, 1, 8, 8, device="cuda"), gain=0.5)
    assert StateSnapshot(previous, 4).encode() == carried_state.encode(previous, 4)
