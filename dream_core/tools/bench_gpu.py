"""``python -m dream_core bench --gpu``: naive loop, engine (compiled and
not), the whole frame in this process and through a server, per model and
size, with TFLOP/s and the share of the device's peak; what each temporal
mode costs per frame; then a 4K frame. Random weights: timing only."""
from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch

from ..config import DreamConfig, DreamSettings
from ..engine import Dreamer, resolve_device
from .bench import BENCH_CONFIG, Reference, device_sync, naive_dream, reference, time_best, time_once, time_per_frame
from .bench_overhead import server_row

# dense bf16 tensor-core peaks, TFLOP/s, for the share-of-peak column
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}


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
    sync = device_sync(dev)
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
                row.update(_temporal_row(dreamer, ref.layer, width, height, config, max(repeats, 2), sync))
                if client is not None:
                    row.update(server_row(client, model, ref.layer, image, config, max(repeats, 2)))
                rows.append(row)
                _print_row(row, _peak(dev))
        if client is not None:
            client.close()
    finally:
        if proc is not None:
            proc.stop()
    if big is not None:
        _big_frame(model_names[0], dev, big, config, sync)
    if server:
        restart_rows(str(dev), sizes[-1], model_names[-1], config)
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
    naive = time_best(lambda: naive_dream(ref.net, ref.hook, image, config, dev, ref.mean, ref.std),
                  max(1, repeats // 3), sync)
    count = max(repeats, 2)
    start = time.perf_counter()
    first = time_once(lambda: dreamer.run(tensor, objective, config), sync)  # uncompiled while the engines build
    dreamer.builder.wait()
    compiled_after = time.perf_counter() - start
    engine = time_per_frame(lambda n: [dreamer.run(tensor, objective, config) for _ in range(n)], count, sync)
    if (width, height) == PROFILED_SIZE:
        profile_frame(dreamer, tensor, objective, config, sync)
    eager_dreamer = Dreamer(dreamer.info.name, weights=None, device=str(dev), compile="off")
    eager_objective = eager_dreamer.objective(ref.layer)
    eager = time_per_frame(lambda n: [eager_dreamer.run(tensor, eager_objective, config) for _ in range(n)], count,
                           sync)
    settings = DreamSettings(dreamer.info.name, layer=ref.layer, weights=None, config=config)
    frame = time_per_frame(lambda n: [dream_picture(dreamer, picture, settings) for _ in range(n)],
                       count, sync)
    flops = frame_flops(dreamer, objective, config, height, width)
    return {"model": dreamer.info.name, "size": f"{width}x{height}", "naive_ms": naive, "engine_ms": engine,
            "first_s": first / 1000, "compiled_after_s": compiled_after, "eager_ms": eager, "frame_ms": frame,
            "tflop": flops / 1e12,
            "tflops": flops / 1e12 / (engine / 1000)}


PROFILED_SIZE = (1920, 1080)  # one frame of this size is profiled per model, once compiled
TOP_KERNELS = 12


def profile_frame(dreamer: Dreamer, tensor: torch.Tensor, objective, config: DreamConfig, sync) -> list[dict]:
    """One frame of the warm engine under torch.profiler: its top kernels
    by time on the device (the CPU's operators where there is no GPU), each
    with its share of the frame and, where the profiler counts them, FLOPs
    and the rate achieved; what a gap to the FLOP floor is made of."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dreamer.device.type == "cuda" else [])
    with profile(activities=activities, with_flops=True) as prof:
        dreamer.run(tensor, objective, config)
        sync()
    on_device = dreamer.device.type == "cuda"
    events = [e for e in prof.key_averages() if (e.self_device_time_total if on_device else e.self_cpu_time_total) > 0]
    events.sort(key=lambda e: e.self_device_time_total if on_device else e.self_cpu_time_total, reverse=True)
    total = sum(e.self_device_time_total if on_device else e.self_cpu_time_total for e in events) or 1
    rows = []
    print(f"  profile of one {tensor.shape[-1]}x{tensor.shape[-2]} {dreamer.info.name} frame "
          f"({'device' if on_device else 'CPU'} time, top {TOP_KERNELS}):")
    for event in events[:TOP_KERNELS]:
        us = event.self_device_time_total if on_device else event.self_cpu_time_total
        flops = getattr(event, "flops", 0) or 0
        rate = f", {flops / (us * 1e-6) / 1e12:.1f} TFLOP/s" if flops else ""
        rows.append({"name": event.key, "ms": us / 1000, "share": us / total, "calls": event.count, "flops": flops})
        print(f"    {us / 1000:8.1f} ms {us / total:6.1%} x{event.count:<5} {event.key[:90]}{rate}")
    return rows


TEMPORAL_MODES = ("none", "vectors", "flow")


def _temporal_row(dreamer: Dreamer, layer: str, width: int, height: int, config: DreamConfig, count: int,
                  sync) -> dict:
    """ms per frame of a shot dreamed in each temporal mode, after its first
    two frames: what carrying the dream from frame to frame costs next to
    dreaming the frames alone (``none``)."""
    shot = panning_shot(width, height, count + 2)
    settings = DreamSettings(dreamer.info.name, layer=layer, weights=None, config=config)
    return {f"{mode}_ms": time_per_frame(_shot_dreamer(dreamer, shot, replace(settings, temporal=mode)), count, sync)
            for mode in TEMPORAL_MODES}


def _shot_dreamer(dreamer: Dreamer, shot: list, settings: DreamSettings):
    """``dream_frames(n)``: the shot's next n frames, in order, in one sequence."""
    from ..frame.pipeline import SequenceDreamer

    sequence, frames = SequenceDreamer(), iter(enumerate(shot, 1))

    def dream_frames(n: int) -> None:
        for _ in range(n):
            number, picture = next(frames)
            if settings.temporal != "vectors":
                picture = replace(picture, vectors=None)  # no Vector pass: flow estimates the motion
            sequence.dream(dreamer, picture, settings, frame=number)

    return dream_frames


def panning_shot(width: int, height: int, frames: int, speed: int = 2) -> list:
    """A camera pan over a smooth pattern, ``speed`` px a frame, with the
    Vector pass Blender would write for it."""
    from ..io import Picture

    x = np.arange(width + speed * frames, dtype=np.float32)[None, :, None]
    y = np.arange(height, dtype=np.float32)[:, None, None]
    phase = np.array([0.0, 2.1, 4.2], np.float32)
    pattern = 0.5 + 0.25 * np.sin(x / 17 + phase) * np.cos(y / 23 - phase) + 0.15 * np.sin((x + y) / 7 + phase)
    vectors = np.zeros((height, width, 4), np.float32)
    vectors[..., 0] = vectors[..., 2] = speed  # towards the previous frame +X, towards the next -X (stored as +)
    return [Picture(np.ascontiguousarray(pattern[:, speed * i:speed * i + width]), False, "float16", vectors)
            for i in range(frames)]


def lockstep_rows(device: str = "auto", sizes=((1920, 1080),), model: str = "lite0", streams=(1, 2, 4),
                  frames: int = 3, config: DreamConfig = BENCH_CONFIG, temporal: str = "vectors") -> list[dict]:
    """Frames per second of a shot's chunks dreamed in lockstep (``dream
    --lockstep K``): K chains of a pan (its Vector pass, ``temporal``), each
    chain's next frame in one batch, against one chain alone (K = 1), after
    two warm-up frames a chain (compilation, the chain's first frame;
    ``time_per_frame``).
    Issue 32's target: K chains at least twice one chain's frames per second
    at 1080p, Lite0, on a GPU. Random weights: timing only."""
    from ..frame.lockstep import NextFrame, dream_together
    from ..frame.pipeline import SequenceDreamer

    dev = resolve_device(device)
    sync = device_sync(dev)
    dreamer = Dreamer(model, weights=None, device=str(dev))
    settings = DreamSettings(model, layer=reference(model, dev, None).layer, weights=None, config=config,
                             temporal=temporal)
    rows = []
    for width, height in sizes:
        shot = panning_shot(width, height, max(streams) * (frames + 2))
        one = None
        for count in streams:
            sequences = [SequenceDreamer() for _ in range(count)]
            chains = [shot[i * (frames + 2):(i + 1) * (frames + 2)] for i in range(count)]
            ticks = iter(range(frames + 2))

            def tick(n: int, sequences=sequences, chains=chains, ticks=ticks, count=count) -> None:
                for _ in range(n):
                    index = next(ticks)
                    dream_together(dreamer, [NextFrame(s, c[index], index + 1) for s, c in zip(sequences, chains)],
                                   settings, batch=count)

            ms = time_per_frame(tick, frames, sync) / count  # per frame written, all chains together
            one = one or ms
            rows.append({"model": model, "size": f"{width}x{height}", "streams": count, "fps": 1000 / ms,
                         "speedup": one / ms})
            print(f"  lockstep {model} {width}x{height}, {count} chain(s): {1000 / ms:6.2f} frames/s "
                  f"({one / ms:.2f}x one chain)")
    return rows


def restart_rows(device: str, size: tuple[int, int], model: str = "lite0", config: DreamConfig = BENCH_CONFIG,
                 timeout: float = 1800) -> dict:
    """How long a server takes to have every engine of a frame size built,
    told the size by ``prepare``: started cold (an empty compile cache),
    then restarted on the cache the first one left."""
    from ..wire.spawn import spawn_server

    width, height = size
    params = {"model": model, "weights": None, "octaves": config.octaves, "octave_scale": config.octave_scale,
              "iterations": config.iterations}
    times = {}
    with tempfile.TemporaryDirectory(prefix="dream-compile-cache-") as folder:
        for start in ("cold_compile_s", "restart_compile_s"):
            proc = spawn_server(sys.executable, device=device, extra_args=["--preload", model,
                                                                          "--compile-cache", folder])
            try:
                with proc.connect(timeout=600) as client:
                    began = time.perf_counter()
                    client.prepare(params, width, height)
                    while client.hello().get("compiling", 0) and time.perf_counter() - began < timeout:
                        time.sleep(0.2)
                    times[start] = time.perf_counter() - began
            finally:
                proc.stop()
    print(f"  {model} {width}x{height}, every engine built after prepare: cold server {times['cold_compile_s']:.1f} s, "
          f"restarted on its compile cache {times['restart_compile_s']:.1f} s")
    return times


def _print_row(row: dict, peak: float | None) -> None:
    engine = row["engine_ms"]
    server = (f", server {row['server_ms']:7.1f} ms ({row['server_ms'] / engine - 1:+.0%}; one frame at a time "
              f"{row['server_1_ms'] / engine - 1:+.0%})" if "server_ms" in row else "")
    share = f", {row['tflops'] / peak:.1%} of peak" if peak else ""
    temporal = ", ".join(f"{mode} {row[mode + '_ms']:.1f} ms ({row[mode + '_ms'] / row['none_ms']:.2f}x)"
                         for mode in TEMPORAL_MODES)
    print(f"  {row['model']:9} {row['size']:>9}: naive {row['naive_ms']:8.1f} ms, engine {engine:7.1f} ms "
          f"({row['naive_ms'] / engine:5.1f}x; uncompiled {row['eager_ms']:.1f} ms, first frame of a new size "
          f"{row['first_s']:.2f} s while its engines compile, all compiled after {row['compiled_after_s']:.1f} s), "
          f"whole frame {row['frame_ms']:7.1f} ms "
          f"({row['frame_ms'] / engine - 1:+.0%}){server}; {row['tflop']:.2f} TFLOP/frame, "
          f"{row['tflops']:.1f} TFLOP/s{share}; a shot, per frame: {temporal}")


def _big_frame(model: str, dev: torch.device, size: tuple[int, int], config: DreamConfig, sync) -> None:
    """A 4K frame: its time and the peak GPU memory (bounded by tiling)."""
    width, height = size
    dreamer = Dreamer(model, weights=None, device=str(dev))
    objective = dreamer.objective()
    tensor = torch.rand(1, 3, height, width, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    ms = time_best(lambda: dreamer.run(tensor, objective, config), 1, sync)
    memory = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    print(f"  {model} {width}x{height}: {ms:.0f} ms/frame, peak GPU memory {memory:.2f} GiB "
          f"(tiles of {dreamer.tile_for(height, width, config)} px)")


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


def _peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
