"""``python -m dream_core bench --overhead``: what the server costs over
the engine alone, on the same frame, side by side in one run.

Four ways to dream one 1920x1080 frame: the engine alone (a tensor already
on the device), the whole frame in this process (NumPy in and out: colour
and transfers), and through a spawned server, raw float16 in and out, with
two frames in flight and one at a time. The server's overhead fraction is
its ms per frame over the engine's, less one. A cheap dream (Lite0's stem,
one octave, one iteration, random weights) makes the host work (decoding,
colour, the pipeline's host side, encoding, the socket) visible on a CPU:
its engine-to-whole-frame ratio is close to the GPU's at 1080p with the
full settings (docs/BENCHMARKS.md). ``bench --gpu`` reports the same
fractions through :func:`server_row`.

Beside the wall clock, the CPU time each way spends (this process for the
engine and the whole frame, the server's process for the server; Linux),
and of it the thread that dreams: on a machine others share, wall times
move with their load while the work a frame costs barely does, and what
the dreaming thread does beyond the engine's work is what no other thread
can take off it.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Optional

import numpy as np
import torch

from ..config import DreamConfig, DreamSettings
from ..engine import Dreamer, resolve_device
from ..engine.device import use_cpu_threads
from .bench import device_sync

OVERHEAD_CONFIG = DreamConfig(octaves=1, iterations=1)
OVERHEAD_LAYER = "stem"
WAYS = ("engine_ms", "frame_ms", "server_ms", "server_1_ms")
COLUMNS = ("_ms", "_cpu_ms", "_device_ms")


def run_overhead_bench(device: str = "auto", width: int = 1920, height: int = 1080, model: str = "lite0",
                       layer: str = OVERHEAD_LAYER, config: DreamConfig = OVERHEAD_CONFIG, count: int = 6,
                       rounds: int = 3, threads: int = 0) -> dict:
    """ms per frame of each way (the median of ``rounds`` runs of ``count``
    frames, the ways taking turns so a busy machine slows them alike), and
    each one's fraction over the engine. On the CPU the bench and its
    server dream on the same number of threads."""
    from ..api import dream_picture
    from ..io import Picture
    from ..wire.spawn import spawn_server

    dev = resolve_device(device)
    threads = use_cpu_threads(threads) if dev.type == "cpu" else 0
    sync = device_sync(dev)
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32).astype(np.float16)
    dreamer = Dreamer(model, weights=None, device=str(dev))
    objective = dreamer.objective(layer)
    tensor = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None].to(dev)
    picture = Picture(image.astype(np.float32), False, "float16")
    settings = DreamSettings(model, layer=layer, weights=None, config=config)
    extra = ["--preload", ""] + (["--threads", str(threads)] if threads else [])
    server = spawn_server(sys.executable, device=str(dev), extra_args=extra)
    try:
        with server.connect(timeout=600) as client:
            runs = {"engine_ms": lambda n: [dreamer.run(tensor, objective, config) for _ in range(n)],
                    "frame_ms": lambda n: [dream_picture(dreamer, picture, settings) for _ in range(n)],
                    "server_ms": server_frames(client, model, layer, image, config, in_flight=2),
                    "server_1_ms": server_frames(client, model, layer, image, config, in_flight=1)}
            for run in runs.values():
                run(2)  # warm-up: the server loads the model, every path its buffers
            samples: dict = {way: [] for way in WAYS}
            for _ in range(rounds):
                for way, run in runs.items():
                    samples[way].append(_per_frame(run, count, sync, server.pid if "server" in way else None))
            info = client.hello()
    finally:
        server.stop()
    figures = {f"{way[:-3]}{column}": statistics.median(s[i] for s in samples[way])
               for way in WAYS for i, column in enumerate(COLUMNS) if None not in (s[i] for s in samples[way])}
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{info['device_info']['name']}, {threads} " \
        "thread(s) each for the bench and its server"
    print(f"server overhead: {width}x{height}, {model} to {layer}, {config.octaves} octave(s), {config.iterations} "
          f"iteration(s), random weights, raw float16 in and out, on {name}; median of {rounds} rounds of {count} "
          "frames; ms per frame and the share over the engine alone")
    for way in WAYS:
        cells = []
        for column, label in zip(COLUMNS, ("wall", "CPU", "device thread's CPU")):
            if f"{way[:-3]}{column}" in figures:
                value, engine = figures[f"{way[:-3]}{column}"], figures[f"engine{column}"]
                cells.append(f"{label} {value:6.0f} ({value / engine - 1:+4.0%})")
        rounds_wall = ", ".join(f"{s[0]:.0f}" for s in samples[way])
        print(f"  {_LABELS[way] + ':':27} " + ", ".join(cells) + f"; wall by round {rounds_wall}")
    return figures


_LABELS = {"engine_ms": "engine alone", "frame_ms": "whole frame, this process",
           "server_ms": "server, 2 in flight", "server_1_ms": "server, 1 at a time"}


def _per_frame(run_frames, count: int, sync, pid: Optional[int]) -> tuple:
    """ms per frame: wall clock, CPU, and the CPU of the thread that dreams
    (this process and its own thread, or process ``pid`` and its busiest thread)."""
    sync()
    start, cpu_start = time.perf_counter(), _cpu(pid)
    run_frames(count)
    sync()
    wall, cpu_end = time.perf_counter() - start, _cpu(pid)
    if cpu_start is None or cpu_end is None:
        return wall * 1000 / count, None, None
    threads = [seconds - cpu_start[1].get(tid, 0.0) for tid, seconds in cpu_end[1].items()]
    return wall * 1000 / count, (cpu_end[0] - cpu_start[0]) * 1000 / count, max(threads) * 1000 / count


def _cpu(pid: Optional[int]) -> Optional[tuple[float, dict]]:
    """CPU seconds (user and system) of a process and of each of its live
    threads: this process and this thread, or process ``pid`` where /proc
    says (Linux; a thread that ended counts in the process only); None
    where it cannot be read."""
    if pid is None:
        return time.process_time(), {"this": time.thread_time()}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
        total = _stat_seconds(f"/proc/{pid}/stat")
    except OSError:
        return None
    threads = {tid: _stat_seconds(f"/proc/{pid}/task/{tid}/stat") for tid in tids}
    return total, {tid: seconds for tid, seconds in threads.items() if seconds is not None}


def _stat_seconds(path: str) -> Optional[float]:
    """None for a thread that ended meanwhile (a frame's relay)."""
    try:
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def server_frames(client, model: str, layer: str, image: np.ndarray, config: DreamConfig, *, in_flight: int):
    """``run(n)``: n copies of ``image`` end to end through the server, raw
    float16 in and out, ``in_flight`` at a time."""
    from ..wire.client import FrameRequest

    height, width, channels = image.shape
    params = {"model": model, "weights": None, "layer": layer, "octaves": config.octaves,
              "octave_scale": config.octave_scale, "iterations": config.iterations}
    request = FrameRequest(image.astype("<f2").tobytes(), "raw",
                           raw={"dtype": "float16", "shape": [height, width, channels]})

    def run(count: int) -> None:
        for _ in client.dream_many([request] * count, params, output={"format": "raw", "dtype": "float16"},
                                   in_flight=in_flight):
            pass

    return run


def server_row(client, model: str, layer: str, image: np.ndarray, config: DreamConfig, count: int) -> dict:
    """The same frame end to end through the server: two in flight, and one at a time."""
    from .bench import time_per_frame

    return {key: time_per_frame(server_frames(client, model, layer, image, config, in_flight=in_flight), count,
                                lambda: None)
            for key, in_flight in (("server_ms", 2), ("server_1_ms", 1))}
