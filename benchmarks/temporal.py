"""Temporal coherence benchmark: renders a test animation with bpy (camera
move, objects moving independently and past each other), dreams it in every
temporal mode with the same settings, and prints per mode:

- flicker: mean |dream N - warp(dream N-1)| over non-occluded pixels (warped
  by the renderer's vectors), divided by the same figure for the renders;
- energy: the objective (block energy) of the dreamed frames relative to
  dreaming each frame on its own: coherence must not wash the dream out
  (earlier notes call this figure "strength");
- seconds per frame;
- drift (a separate run of --drift-frames): brightness and saturation of
  the coherent dreams against dreaming each frame on its own, frame by frame.

    .venv/bin/python benchmarks/temporal.py [--frames 24] [--size 160x96] [--drift-frames 100]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dream_core.config import DreamConfig, DreamSettings  # noqa: E402
from dream_core.engine import Dreamer, image_tensor, tensor_pixels  # noqa: E402
from dream_core.frame import temporal  # noqa: E402
from dream_core.frame.pipeline import SequenceDreamer, to_dream_space  # noqa: E402
from dream_core.io import Picture, read_image  # noqa: E402


def render(out_dir: str, frames: int, width: int, height: int, samples: int) -> list[Picture]:
    if not os.path.exists(os.path.join(out_dir, f"frame_{frames:04d}.exr")):
        os.makedirs(out_dir, exist_ok=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "render_sequence.py"), out_dir,
                        str(frames), str(width), str(height), str(samples)], check=True, capture_output=True)
    return [read_image(os.path.join(out_dir, f"frame_{i:04d}.exr")) for i in range(1, frames + 1)]


def motion(pictures: list[Picture], sources: list[np.ndarray]):
    """Flow taking frame i into i+1 (the renderer's) and the non-occluded mask."""
    flows, masks = [], []
    for prev, cur, prev_rgb, cur_rgb in zip(pictures, pictures[1:], sources, sources[1:]):
        flow = temporal.vectors_to_flow(image_tensor(cur.vectors))
        warped, inside = temporal.warp(prev_rgb, flow)
        agree = temporal.consistency(flow, temporal.next_flow_from_vectors(image_tensor(prev.vectors)))
        masks.append(inside * agree * temporal.reliability(warped, cur_rgb))
        flows.append(flow)
    return flows, masks


def dream_all(dreamer, settings: DreamSettings, pictures, mode):
    sequence, dreams, seconds = SequenceDreamer(), [], []
    settings = replace(settings, temporal=mode)
    for picture in pictures:
        start = time.perf_counter()
        out = sequence.dream(dreamer, picture, settings)
        seconds.append(time.perf_counter() - start)
        dreams.append(dream_space(out))
    return dreams, float(np.mean(seconds))


def dream_space(picture: Picture) -> torch.Tensor:
    return to_dream_space(image_tensor(picture.pixels), picture.linear)[0]


def score(dreamer, objective, dreams) -> float:
    return float(np.mean([dreamer.score(d, objective) for d in dreams]))


def gif(path: str, left: list[np.ndarray], right: list[np.ndarray]) -> None:
    from PIL import Image

    frames = [Image.fromarray((tensor_pixels(torch.cat([a, b], dim=-1)) * 255 + 0.5).astype(np.uint8))
              for a, b in zip(left, right)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", default="160x96")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--drift-frames", type=int, default=100, help="frames of the drift run (0: skip)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench_output", "temporal"))
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    pictures = render(os.path.join(args.out, f"renders_{args.frames}_{args.size}"), args.frames, width, height,
                      args.samples)
    sources = [dream_space(p) for p in pictures]
    flows, masks = motion(pictures, sources)
    base_flicker = temporal.flicker(sources, flows, masks)
    dreamer = Dreamer("lite0", device=args.device)
    objective = dreamer.objective()
    config = DreamConfig(octaves=3, iterations=10, step=0.01)
    settings = DreamSettings(config=config)
    print(f"{args.frames} frames {args.size}, lite0 {objective!r}, 3 octaves x 10 iterations, step 0.01, "
          f"device {dreamer.device}; renders' own flicker {base_flicker:.4f}")
    dream_all(dreamer, settings, pictures[:2], "flow")  # warm-up: the first mode pays no start-up
    results = {}
    for mode in ("none", "blend", "flow", "vectors"):
        dreams, spf = dream_all(dreamer, settings, pictures, mode)
        results[mode] = dict(flicker=temporal.flicker(dreams, flows, masks) / base_flicker,
                             energy=score(dreamer, objective, dreams), spf=spf, dreams=dreams)
    none_energy = results["none"]["energy"]
    print(f"{'mode':8} {'flicker':>8} {'vs none':>8} {'energy':>9} {'s/frame':>8}")
    for mode, r in results.items():
        print(f"{mode:8} {r['flicker']:8.2f} {results['none']['flicker'] / r['flicker']:7.1f}x "
              f"{r['energy'] / none_energy:9.2f} {r['spf']:8.2f}")
    preview = os.path.join(args.out, "none_vs_vectors.gif")
    gif(preview, results["none"]["dreams"], results["vectors"]["dreams"])
    print(f"side-by-side preview (none | vectors): {preview}")
    if args.drift_frames:
        long = render(os.path.join(args.out, f"renders_{args.drift_frames}_96x64"), args.drift_frames, 96, 64, 8)
        independent, _ = dream_all(dreamer, settings, long, "none")
        print(f"drift over {args.drift_frames} frames (96x64): brightness and saturation of the dreams, "
              f"relative to dreaming each frame on its own (which has no memory, so cannot drift)")

        def report(label, dreams):
            stats = temporal.brightness_saturation
            gaps = np.array([(stats(d) / stats(n) - 1).tolist() for d, n in zip(dreams, independent)])
            last = gaps[-10:].mean(axis=0)
            print(f"  {label:10} brightness: largest gap {np.abs(gaps[:, 0]).max():5.1%}, last 10 frames "
                  f"{last[0]:+5.1%}; saturation: largest gap {np.abs(gaps[:, 1]).max():5.1%}, last 10 frames "
                  f"{last[1]:+5.1%}")

        # the noise floor: independent dreams with another seed differ this much already
        other_seed = replace(settings, config=config.replace(seed=config.seed + 1))
        report("other seed", dream_all(dreamer, other_seed, long, "none")[0])
        for mode in ("blend", "flow", "vectors"):
            report(mode, dream_all(dreamer, settings, long, mode)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
