"""``python -m dream_core bench``: our engine against a naive reference loop,
side by side on the same frame in one run.

The reference is written the way the common public PyTorch DeepDream scripts
are: the whole classifier runs forward with a hook on the chosen layer, the
parameters keep ``requires_grad`` (so backward also computes weight
gradients nobody uses), fp32, batch 1, and jitter and octave resizing go
through NumPy and PIL on the host every step.
"""
from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..config import DreamConfig, DreamSettings
from ..engine import Dreamer, resolve_device

BENCH_CONFIG = DreamConfig(octaves=4, octave_scale=1.4, iterations=10)
# dense bf16 tensor-core peaks, TFLOP/s, for the share-of-peak column
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}


def naive_dream(net: torch.nn.Module, hook_module: torch.nn.Module, image: np.ndarray, config: DreamConfig,
                device: torch.device, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> np.ndarray:
    """The reference loop (H×W×3 float in [0, 1] in and out)."""
    captured = {}
    handle = hook_module.register_forward_hook(lambda m, i, o: captured.__setitem__("act", o))
    for p in net.parameters():
        p.requires_grad_(True)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    rng = np.random.default_rng(config.seed)
    try:
        base = Image.fromarray((image * 255).astype(np.uint8))
        sizes = [(round(base.width / config.octave_scale**i), round(base.height / config.octave_scale**i))
                 for i in range(config.octaves)][::-1]
        detail = np.zeros((sizes[0][1], sizes[0][0], 3), np.float32)
        for size in sizes:
            octave_base = np.asarray(base.resize(size, Image.BILINEAR), np.float32) / 255
            detail = np.stack([np.asarray(Image.fromarray(detail[..., c]).resize(size, Image.BILINEAR))
                               for c in range(3)], -1)
            img = octave_base + detail
            for _ in range(config.iterations):
                dx, dy = rng.integers(-config.jitter, config.jitter + 1, 2)
                img = np.roll(np.roll(img, dx, 1), dy, 0)
                x = torch.tensor(img.transpose(2, 0, 1)[None], device=device, requires_grad=True)
                net.zero_grad()
                net((x - mean_t) / std_t)
                loss = captured["act"].pow(2).mean()
                loss.backward()
                g = x.grad[0].cpu().numpy().transpose(1, 2, 0)
                img = img + config.step * g / (np.abs(g).mean() + 1e-8)
                img = np.clip(np.roll(np.roll(img, -dx, 1), -dy, 0), 0, 1)
            detail = img - octave_base
        return img
    finally:
        handle.remove()


@dataclass
class Reference:
    """A whole classifier with the hooked layer, as the reference scripts use it."""

    net: torch.nn.Module
    hook: torch.nn.Module
    layer: str
    mean: tuple
    std: tuple


def reference(model: str, device: torch.device, weights: str | None) -> Reference:
    if model == "lite0":
        from ..models.lite0 import MEAN, STD, lite0_classifier

        net = lite0_classifier("package" if weights == "default" else None)
        net.normalize = torch.nn.Identity()  # the loop normalises itself, like the scripts
        return Reference(net.to(device).eval(), net._blocks[9], "block9", MEAN, STD)
    if model == "googlenet":
        import torchvision

        from ..models.classic import IMAGENET_MEAN, IMAGENET_STD

        net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
        return Reference(net.to(device).eval(), net.inception4c, "inception4c", IMAGENET_MEAN, IMAGENET_STD)
    raise ValueError(f"no reference loop for {model}; use lite0 or googlenet")


def _time(fn, repeats: int, sync) -> float:
    fn()  # warm-up (and, when compiled, the per-shape compilation)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _once(fn, sync) -> float:
    """ms of one call, start-up costs (compilation) included."""
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - start) * 1000


def _per_frame(run_frames, count: int, sync) -> float:
    """ms per frame of ``run_frames(count)`` after a warm-up of two frames:
    throughput, the figure a batch sees."""
    run_frames(2)
    sync()
    start = time.perf_counter()
    run_frames(count)
    sync()
    return (time.perf_counter() - start) * 1000 / count


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def frame_flops(dreamer: Dreamer, objective, config: DreamConfig, height: int, width: int) -> float:
    """FLOPs of dreaming one frame: forward and backward of every tile of
    each octave, counted once, times the iterations."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..engine import ObjectiveValue
    from ..engine.octaves import octave_shapes
    value = ObjectiveValue(dreamer.net, objective)
    total = 0.0
    for h, w in octave_shapes(height, width, config.octaves, config.octave_scale):
        grid = dreamer.grid(h, w, config)
        shape = (1, 3, h, w) if grid.single else (grid.rows * grid.cols, 3, grid.side, grid.side)
        tiles = torch.rand(*shape, device=dreamer.device, requires_grad=True)
        with FlopCounterMode(display=False) as flops, torch.enable_grad(), dreamer._autocast(config.precision):
            value(tiles).sum().backward()
        total += flops.get_total_flops() * config.iterations
    return total


def run_cpu_bench(model: str, width: int, height: int, device: str = "auto", repeats: int = 3) -> dict:
    """Prints and returns ms/frame of both loops and their ratio."""
    dev = resolve_device(device)
    torch.manual_seed(0)
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    ref = reference(model, dev, "default" if model == "lite0" else None)
    dreamer = Dreamer(model, weights="default" if model == "lite0" else None, device=str(dev))
    objective = dreamer.objective(ref.layer)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].to(dev)
    sync = _sync(dev)
    naive_ms = _time(lambda: naive_dream(ref.net, ref.hook, image, BENCH_CONFIG, dev, ref.mean, ref.std),
                     repeats, sync)
    ours_ms = _time(lambda: dreamer.run(tensor, objective, BENCH_CONFIG), repeats, sync)
    print(f"DeepDream {width}x{height}, {model} to {ref.layer}, {BENCH_CONFIG.octaves} octaves x "
          f"{BENCH_CONFIG.octave_scale}, {BENCH_CONFIG.iterations} iterations, device {dev} "
          f"({torch.get_num_threads()} threads), best of {repeats}")
    print(f"  naive reference loop : {naive_ms:9.1f} ms/frame")
    print(f"  dream_core engine    : {ours_ms:9.1f} ms/frame")
    print(f"  speed-up             : {naive_ms / ours_ms:9.2f}x")
    return {"naive_ms": naive_ms, "ours_ms": ours_ms, "ratio": naive_ms / ours_ms}


def _peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def run_gpu_bench(device: str = "auto", sizes=((960, 540), (1920, 1080)), model_names=("googlenet", "lite0"),
                  repeats: int = 3, config: DreamConfig = BENCH_CONFIG, big: tuple[int, int] | None = (3840, 2160),
                  server: bool = True) -> list[dict]:
    """The GPU benchmark of issue 7: naive loop, engine, engine through the
    server (two frames in flight, and one at a time), per model and size,
    plus the whole frame in this process (engine + colour + transfers),
    with TFLOP/s and the share of the device's peak; then a 4K frame's peak
    memory. Random weights (timing only). Engine and server figures are
    throughput over the same number of frames; the naive loop is best of."""
    from ..wire.spawn import spawn_server

    dev = resolve_device(device)
    sync = _sync(dev)
    rows = []
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"GPU bench on {name}: {config.octaves} octaves x {config.octave_scale}, {config.iterations} iterations, "
          f"random weights; naive: best of {max(1, repeats // 3)}, others: {max(repeats, 2)} frames in a row")
    proc = spawn_server(sys.executable, device=str(dev), extra_args=["--preload", ""]) if server else None
    try:
        client = proc.connect(timeout=600) if proc else None
        for model in model_names:
            ref = reference(model, dev, None)
            dreamer = Dreamer(model, weights=None, device=str(dev))
            objective = dreamer.objective(ref.layer)
            for width, height in sizes:
                image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
                row = _engine_row(dreamer, ref, objective, image, config, repeats, sync)
                if client is not None:
                    row.update(_server_row(client, model, ref.layer, image, config, max(repeats, 2)))
                rows.append(row)
                _print_row(row, _peak(dev))
        if client is not None:
            client.close()
    finally:
        if proc is not None:
            proc.stop()
    if big is not None:
        _big_frame(model_names[0], dev, big, config, sync)
    return rows


def _engine_row(dreamer: Dreamer, ref: Reference, objective, image: np.ndarray, config: DreamConfig, repeats: int,
                sync) -> dict:
    """Naive loop, engine alone (a tensor on the device), and a whole frame
    in this process (NumPy in and out: transfers and colour work included)."""
    from ..api import dream_picture
    from ..io import Picture

    height, width = image.shape[:2]
    dev = dreamer.device
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].to(dev)
    picture = Picture(image, False, "float16")
    naive = _time(lambda: naive_dream(ref.net, ref.hook, image, config, dev, ref.mean, ref.std),
                  max(1, repeats // 3), sync)
    count = max(repeats, 2)
    first = _once(lambda: dreamer.run(tensor, objective, config), sync)  # compiles every octave's shape
    engine = _per_frame(lambda n: [dreamer.run(tensor, objective, config) for _ in range(n)], count, sync)
    eager_dreamer = Dreamer(dreamer.info.name, weights=None, device=str(dev), compile="off")
    eager_objective = eager_dreamer.objective(ref.layer)
    eager = _per_frame(lambda n: [eager_dreamer.run(tensor, eager_objective, config) for _ in range(n)], count, sync)
    settings = DreamSettings(dreamer.info.name, layer=ref.layer, weights=None, config=config)
    frame = _per_frame(lambda n: [dream_picture(dreamer, picture, settings) for _ in range(n)],
                       count, sync)
    flops = frame_flops(dreamer, objective, config, height, width)
    return {"model": dreamer.info.name, "size": f"{width}x{height}", "naive_ms": naive, "engine_ms": engine,
            "first_s": first / 1000, "eager_ms": eager, "frame_ms": frame, "tflop": flops / 1e12,
            "tflops": flops / 1e12 / (engine / 1000)}


def _server_row(client, model: str, layer: str, image: np.ndarray, config: DreamConfig, count: int) -> dict:
    """The same frame end to end through the server: two in flight, and one at a time."""
    from ..wire.client import FrameRequest

    height, width = image.shape[:2]
    params = {"model": model, "weights": None, "layer": layer, "octaves": config.octaves,
              "octave_scale": config.octave_scale, "iterations": config.iterations}
    request = FrameRequest(image.astype("<f2").tobytes(), "raw", raw={"dtype": "float16", "shape": [height, width, 3]})
    return {key: _per_frame(functools.partial(_through_server, client, request, params, in_flight=in_flight),
                            count, lambda: None)
            for key, in_flight in (("server_ms", 2), ("server_1_ms", 1))}


def _print_row(row: dict, peak: float | None) -> None:
    engine = row["engine_ms"]
    server = (f", server {row['server_ms']:7.1f} ms ({row['server_ms'] / engine - 1:+.0%}; one frame at a time "
              f"{row['server_1_ms'] / engine - 1:+.0%})" if "server_ms" in row else "")
    share = f", {row['tflops'] / peak:.1%} of peak" if peak else ""
    print(f"  {row['model']:9} {row['size']:>9}: naive {row['naive_ms']:8.1f} ms, engine {engine:7.1f} ms "
          f"({row['naive_ms'] / engine:5.1f}x; uncompiled {row['eager_ms']:.1f} ms, first frame with compilation "
          f"{row['first_s']:.1f} s), whole frame {row['frame_ms']:7.1f} ms "
          f"({row['frame_ms'] / engine - 1:+.0%}){server}; {row['tflop']:.2f} TFLOP/frame, "
          f"{row['tflops']:.1f} TFLOP/s{share}")


def _big_frame(model: str, dev: torch.device, size: tuple[int, int], config: DreamConfig, sync) -> None:
    """A 4K frame: its time and the peak GPU memory (bounded by tiling)."""
    width, height = size
    dreamer = Dreamer(model, weights=None, device=str(dev))
    objective = dreamer.objective()
    tensor = torch.rand(1, 3, height, width, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    ms = _time(lambda: dreamer.run(tensor, objective, config), 1, sync)
    memory = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    print(f"  {model} {width}x{height}: {ms:.0f} ms/frame, peak GPU memory {memory:.2f} GiB "
          f"(tiles of {dreamer.tile_for(height, width, config)} px)")


def _through_server(client, request, params: dict, count: int, *, in_flight: int) -> None:
    """``count`` frames end to end, raw float16 out, ``in_flight`` at a time."""
    for _ in client.dream_many([request] * count, params, output={"format": "raw", "dtype": "float16"},
                               in_flight=in_flight):
        pass


def run_transport_bench(device: str = "auto", repeats: int = 5, width: int = 1920, height: int = 1080) -> dict:
    """Round trip of an RGBA frame through the protocol alone, against dreaming it."""
    import sys

    from ..io import Picture, encode_image
    from ..wire.spawn import spawn_server

    rng = np.random.default_rng(0)
    rgba = rng.random((height, width, 4), dtype=np.float32)
    frames = {
        "raw float16": (rgba.astype("<f2").tobytes(), "raw", {"dtype": "float16", "shape": [height, width, 4]}),
        "raw uint8": ((rgba * 255).astype(np.uint8).tobytes(), "raw", {"dtype": "uint8", "shape": [height, width, 4]}),
        "png 8-bit": (encode_image(Picture(rgba, False, "uint8"), "png"), "png", None),
    }
    server = spawn_server(sys.executable, device=device)
    figures: dict = {}
    try:
        with server.connect(timeout=600) as client:
            info = client.hello()
            for name, (data, _, _) in frames.items():
                figures[f"echo {name}"] = _time(functools.partial(client.echo, [data]), repeats, lambda: None)
            params = {"seed": 0}
            data, fmt, raw = frames["raw float16"]
            out = {"format": "raw", "dtype": "float16"}
            figures["dream raw float16"] = _time(lambda: client.dream(data, fmt, params, raw=raw, output=out),
                                                 max(1, repeats // 5), lambda: None)
    finally:
        server.stop()
    dream_ms = figures["dream raw float16"]
    print(f"transport: {width}x{height} RGBA through loopback TCP, server on {info['device']}, best of {repeats}")
    for name, (data, _, _) in frames.items():
        ms = figures[f"echo {name}"]
        print(f"  echo {name:12} {len(data) / 2**20:6.1f} MiB  {ms:8.1f} ms round trip  "
              f"{100 * ms / dream_ms:5.1f}% of a dream")
    print(f"  dream (lite0 defaults, raw float16 in and out): {dream_ms:.0f} ms/frame end to end")
    return figures
