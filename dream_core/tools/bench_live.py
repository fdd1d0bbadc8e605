"""``python -m dream_core bench --live``: Live Dream through a server
process, as the add-on drives it: one update in flight, each capture taken
when the last dream is back.

The view pans over a photograph at a steady speed in real time (each
capture shows where the view is when it is taken), then holds still. It
reports updates a second while the view moves, the latency from a capture
leaving to its dream back (the add-on adds its capture, upload and draw:
``window_manager.dream_live.latency_ms`` measures those too, in Blender),
and how long a still view takes to reach the full dream of the settings.
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np

PAN_SPEED = 40.0  # px a second: an artist dragging the view slowly


def _panorama(width: int, height: int) -> np.ndarray:
    """A photograph wide enough to pan across for a while, RGBA uint8."""
    import cv2
    import skimage.data

    photo = skimage.data.astronaut()
    wide = np.concatenate([photo, photo[:, ::-1]], axis=1)
    wide = cv2.resize(wide, (round(wide.shape[1] * height / wide.shape[0]), height), interpolation=cv2.INTER_AREA)
    if wide.shape[1] < 2 * width:
        wide = np.concatenate([wide, wide[:, ::-1]] * 2, axis=1)
    return np.concatenate([wide, np.full(wide.shape[:2] + (1,), 255, np.uint8)], axis=-1)


def run_live_bench(device: str = "auto", width: int = 256, height: int = 144, seconds: float = 10.0,
                   params: dict | None = None) -> dict:
    from ..wire.spawn import spawn_server

    panorama = _panorama(width, height)
    span = panorama.shape[1] - width
    params = params or {}
    server = spawn_server(sys.executable, device=device)
    try:
        with server.connect(timeout=600) as client:
            info = client.hello()
            first = np.ascontiguousarray(panorama[:, :width])
            started = time.perf_counter()
            client.live("bench-warm", first.tobytes(), width, height, params)  # the model loads, if not yet
            warm_ms = (time.perf_counter() - started) * 1000
            client.close_job("bench-warm")
            latencies, depths = [], []
            began = time.perf_counter()
            while time.perf_counter() - began < seconds:
                x = int(PAN_SPEED * (time.perf_counter() - began)) % span
                capture = np.ascontiguousarray(panorama[:, x:x + width])
                sent = time.perf_counter()
                reply = client.live("bench", capture.tobytes(), width, height, params)
                latencies.append(time.perf_counter() - sent)
                depths.append(reply.depth)
            moving_s = time.perf_counter() - began
            still = capture.tobytes()
            began, updates = time.perf_counter(), 0
            while True:
                reply = client.live("bench", still, width, height, params)
                updates += 1
                if reply.full or updates > 1000:
                    break
            full_s = time.perf_counter() - began
            client.close_job("bench")
    finally:
        server.stop()
    figures = {"updates_a_second": len(latencies) / moving_s, "latency_ms": 1000 * statistics.median(latencies),
               "latency_p95_ms": 1000 * sorted(latencies)[int(0.95 * (len(latencies) - 1))],
               "depth_moving": statistics.mean(depths), "full_s": full_s, "full_updates": updates,
               "first_ms": warm_ms}
    print(f"Live Dream {width}x{height}, a view panning {PAN_SPEED:g} px/s for {seconds:g} s then held still, "
          f"server on {info['device']} ({info['device_info'].get('name', '')}), one update in flight")
    print(f"  moving: {figures['updates_a_second']:6.2f} updates/s, latency (sent to dream back) median "
          f"{figures['latency_ms']:.0f} ms, p95 {figures['latency_p95_ms']:.0f} ms, mean depth "
          f"{figures['depth_moving']:.2f}")
    print(f"  held still: full depth after {full_s:.2f} s ({updates} updates)")
    print(f"  a new session's first update: {warm_ms:.0f} ms")
    return figures
