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

from ..config import DreamConfig
from ..engine import Dreamer, resolve_device

BENCH_CONFIG = DreamConfig(octaves=4, octave_scale=1.4, iterations=10)


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


def time_best(fn, repeats: int, sync) -> float:
    fn()  # warm-up (and, when compiled, the per-shape compilation)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def time_once(fn, sync) -> float:
    """ms of one call, start-up costs (compilation) included."""
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - start) * 1000


def time_per_frame(run_frames, count: int, sync) -> float:
    """ms per frame of ``run_frames(count)`` after a warm-up of two frames:
    throughput, the figure a batch sees."""
    run_frames(2)
    sync()
    start = time.perf_counter()
    run_frames(count)
    sync()
    return (time.perf_counter() - start) * 1000 / count


def device_sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def run_cpu_bench(model: str, width: int, height: int, device: str = "auto", repeats: int = 3) -> dict:
    """Prints and returns ms/frame of both loops and their ratio."""
    dev = resolve_device(device)
    torch.manual_seed(0)
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    ref = reference(model, dev, "default" if model == "lite0" else None)
    dreamer = Dreamer(model, weights="default" if model == "lite0" else None, device=str(dev))
    objective = dreamer.objective(ref.layer)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].to(dev)
    sync = device_sync(dev)
    naive_ms = time_best(lambda: naive_dream(ref.net, ref.hook, image, BENCH_CONFIG, dev, ref.mean, ref.std),
                     repeats, sync)
    ours_ms = time_best(lambda: dreamer.run(tensor, objective, BENCH_CONFIG), repeats, sync)
    print(f"DeepDream {width}x{height}, {model} to {ref.layer}, {BENCH_CONFIG.octaves} octaves x "
          f"{BENCH_CONFIG.octave_scale}, {BENCH_CONFIG.iterations} iterations, device {dev} "
          f"({torch.get_num_threads()} threads), best of {repeats}")
    print(f"  naive reference loop : {naive_ms:9.1f} ms/frame")
    print(f"  dream_core engine    : {ours_ms:9.1f} ms/frame")
    print(f"  speed-up             : {naive_ms / ours_ms:9.2f}x")
    return {"naive_ms": naive_ms, "ours_ms": ours_ms, "ratio": naive_ms / ours_ms}


def run_transport_bench(device: str = "auto", repeats: int = 5, width: int = 1920, height: int = 1080) -> dict:
    """Round trip of an RGBA frame through the protocol alone, against dreaming it."""

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
                figures[f"echo {name}"] = time_best(functools.partial(client.echo, [data]), repeats, lambda: None)
            params = {"seed": 0}
            data, fmt, raw = frames["raw float16"]
            out = {"format": "raw", "dtype": "float16"}
            figures["dream raw float16"] = time_best(lambda: client.dream(data, fmt, params, raw=raw, output=out),
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
