"""Where a carried dream's strength goes, frame by frame: a diagnostic for
benchmarks/temporal.py's *strength* (the objective of a mode's dreams over
that of independent frames'). Per shot it dreams ``none`` and ``vectors``
with the benchmark's settings and prints, per frame, the objective of:

- ``none``: the independent frame's dream;
- ``base``: the carried frame's image before the ascent (its render plus the
  carried pattern, see carry.prepare), then ``ascent`` (the engine's dream
  of it), ``band`` (its change over the carried pattern kept to the finest
  scales, regrowth.fine_band_change) and ``dream`` (the colour anchor's
  correction too: what the sequence carries on), each over ``none``'s;
- ``carried``: the previous frame's dream moved into this frame *with its
  render* (what the carry would give if this render were the one before,
  moved), over ``none``'s: beside ``base`` it says how much of the strength
  the change of render under the carried pattern takes (a path tracer's
  noise differs from frame to frame; the pattern an independent frame grows
  on it is new every frame);
- ``smooth``: the objective of the dream over ``none``'s with both (and, for
  the ratio's sake, nothing else) smoothed by a Gaussian of sigma 1 px: the
  strength at the pattern's scale, without the 1-px scales where the noise is;
- the carried share (mean over the frame and the share of pixels carried in
  part, between 0.05 and 0.95), the finest octave's mean step over the carried
  pixels (regrowth), the strength governor's gain and its lift under the floor.

With ``--clean DIR`` (the same shot rendered denoised, ``benchmarks/shots.py
SHOT DIR 256 144 4 denoised``) it then takes the first two frames apart: the
noise is the render less its denoised render, and the first frame's dream's
detail (dream less render) moved into the second frame is scored over
the second frame's independent dream on the second frame's render (as
``vectors`` carries it), on its denoised render, on that with the first
frame's noise moved with the detail, and on the render with the fine scales
of the warp error (finer than ``reliability_noise_blur``) put back: the first
frame's noise carried, as ``--tune noise_from=vectors`` does.

    .venv/bin/python benchmarks/strength_trace.py --shots grain [--tune name=value] [--clean DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import temporal as bench  # noqa: E402  (benchmarks/temporal.py: its shots, settings and helpers)

from dream_core.config import DreamConfig, DreamSettings  # noqa: E402
from dream_core.engine import Dreamer, image_tensor  # noqa: E402
from dream_core.engine.device import use_cpu_threads  # noqa: E402
from dream_core.frame import temporal  # noqa: E402
from dream_core.frame.pipeline import SequenceDreamer  # noqa: E402
from dream_core.frame.temporal.blur import gaussian_blur  # noqa: E402
from dream_core.frame.temporal.regrowth import fine_band_change  # noqa: E402
from dream_core.frame.temporal.warping import warp  # noqa: E402
from dream_core.io import read_image  # noqa: E402


class TracedCarry(temporal.TemporalCarry):
    """A TemporalCarry that keeps, per frame, the images and maps the trace scores."""

    def __init__(self, tuning: temporal.Tuning) -> None:
        super().__init__(tuning)
        self.frames: list[dict] = []

    def prepare(self, mode, source, vectors):
        prepared = super().prepare(mode, source, vectors)
        record = dict(base=prepared.base, confidence=prepared.confidence, fine=prepared.fine_step_mask)
        if self.previous is not None and prepared.confidence is not None:
            record["carried"] = warp(self.previous.dream, temporal.vectors_to_flow(vectors))[0]
        record["gain"] = self.previous.gain if self.previous is not None else 1.0
        record["lift"] = self.previous.lift if self.previous is not None else 0.0
        self.frames.append(record)
        return prepared

    def settle(self, prepared, dream, source):
        record = self.frames[-1]
        record["ascent"] = dream
        if prepared.confidence is not None:
            record["band"] = fine_band_change(dream, prepared.base, prepared.confidence, self.tuning)
        settled = super().settle(prepared, dream, source)
        record["dream"] = settled
        return settled


def trace(shot: str, args, dreamer: Dreamer, objective, settings: DreamSettings) -> None:
    width, height = map(int, args.size.split("x"))
    samples = bench.shots_module().samples_for(shot, args.samples)
    folder = args.renders or os.path.join(args.out, f"{shot}_{args.size}_{samples}")
    pictures = bench.render(shot, folder, width, height, samples)
    def score(image: torch.Tensor) -> float:
        return dreamer.score(image, objective)

    none = SequenceDreamer(args.tuning)
    none_dreams = [bench.dream_space(none.dream(dreamer, p, replace(settings, temporal="none"), frame=i + 1))
                   for i, p in enumerate(pictures)]
    sequence = SequenceDreamer(args.tuning)
    sequence.carry = carry = TracedCarry(args.tuning)
    for i, p in enumerate(pictures):
        sequence.dream(dreamer, p, replace(settings, temporal="vectors"), frame=i + 1)
    print(f"\n{shot}: {len(pictures)} frames {args.size} from {folder}; vectors over none, per frame")
    print(f"{'frame':>5} {'none':>7} {'render':>7} {'carried':>7} {'base':>6} {'ascent':>6} {'band':>6} {'dream':>6} "
          f"{'smooth':>6} {'share':>6} {'part':>5} {'fine':>5} {'gain':>5} {'lift':>5}")
    rows = []
    for i, (record, alone) in enumerate(zip(carry.frames, none_dreams)):
        reference = score(alone)
        ratios = [score(record[key]) / reference if key in record else float("nan")
                  for key in ("carried", "base", "ascent", "band", "dream")]
        smooth = score(gaussian_blur(record["dream"], 1.0)) / score(gaussian_blur(alone, 1.0))
        share = record["confidence"]
        if share is None:
            mean_share = part = fine = float("nan")
        else:
            mean_share = float(share.mean())
            part = float(((share > 0.05) & (share < 0.95)).float().mean())
            fine = float((record["fine"] * share).sum() / share.sum().clamp(min=1e-9))
        row = [reference, score(bench.dream_space(pictures[i])) if args.render else float("nan"), *ratios, smooth,
               mean_share, part, fine, record["gain"], record["lift"]]
        rows.append(row)
        print(f"{i + 1:5d} {row[0]:7.4f} {row[1]:7.4f} " + " ".join(f"{v:6.3f}" for v in row[2:8])
              + f" {row[8]:6.3f} {row[9]:5.3f} {row[10]:5.3f} {row[11]:5.2f} {row[12]:5.3f}")
    rows = np.array(rows)
    dreams = np.array([score(r["dream"]) for r in carry.frames])
    nones = rows[:, 0]
    print(f"strength (the benchmark's: mean objective over none's) {dreams.mean() / nones.mean():.3f}; "
          f"mean over frames 2-: carried {np.nanmean(rows[1:, 2]):.3f}, base {np.nanmean(rows[1:, 3]):.3f}, "
          f"ascent {np.nanmean(rows[1:, 4]):.3f}, band {np.nanmean(rows[1:, 5]):.3f}, "
          f"dream {np.nanmean(rows[1:, 6]):.3f}, smooth {np.nanmean(rows[1:, 7]):.3f}")


def noise_swap(shot: str, args, dreamer: Dreamer, objective, settings: DreamSettings) -> None:
    """The first two frames: the first dream's detail on the second render, with and without noise."""
    samples = bench.shots_module().samples_for(shot, args.samples)
    folder = args.renders or os.path.join(args.out, f"{shot}_{args.size}_{samples}")

    def frame(directory: str, number: int):
        return read_image(os.path.join(directory, f"frame_{number:04d}.exr"))

    def fresh(picture) -> torch.Tensor:
        alone = replace(settings, temporal="none")
        return bench.dream_space(SequenceDreamer(args.tuning).dream(dreamer, picture, alone))

    def score(image: torch.Tensor) -> float:
        return dreamer.score(image.clamp(0.0, 1.0), objective)

    first, second = frame(folder, 1), frame(folder, 2)
    r1, r2 = bench.dream_space(first), bench.dream_space(second)
    c1, c2 = bench.dream_space(frame(args.clean, 1)), bench.dream_space(frame(args.clean, 2))
    flow = temporal.vectors_to_flow(image_tensor(second.vectors))

    def moved(image: torch.Tensor) -> torch.Tensor:
        return warp(image, flow)[0]

    detail, error = fresh(first) - r1, moved(r1) - r2
    reference = score(fresh(second))
    print(f"\n{shot}, frames 1 -> 2 (noise: the render less {args.clean}'s; rms "
          f"{float((r2 - c2).square().mean().sqrt()):.4f}), objective over the second frame's independent dream's")
    for name, image in (("the first dream moved (its render with it)", moved(r1 + detail)),
                        ("the detail on the second render (as vectors carries it)", r2 + moved(detail)),
                        ("the detail on the second render denoised", c2 + moved(detail)),
                        ("the same plus the first render's noise moved with it", c2 + moved(r1 - c1 + detail)),
                        ("the detail on the render plus the warp error's fine scales",
                         r2 + error - gaussian_blur(error, args.tuning.reliability_noise_blur) + moved(detail)),
                        ("the independent dream of the second render denoised", fresh(frame(args.clean, 2)))):
        print(f"  {name:60} {score(image) / reference:.3f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shots", default="grain")
    p.add_argument("--size", default="256x144")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--out", default=os.path.join(bench.ROOT, "bench_output", "temporal"))
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--renders", default="", help="the shot's frames from this folder (another render of it)")
    p.add_argument("--clean", default="", help="the shot rendered denoised: the first two frames taken apart")
    p.add_argument("--render", action="store_true", help="also print the render's own objective")
    p.add_argument("--tune", default="", metavar="NAME=VALUE[,NAME=VALUE]")
    args = p.parse_args(argv)
    args.tuning = temporal.TUNING.with_overrides(args.tune)
    use_cpu_threads(args.threads)
    torch.manual_seed(0)
    dreamer = Dreamer("lite0", device="cpu")
    objective = dreamer.objective()
    settings = DreamSettings(config=DreamConfig(octaves=3, iterations=10, step=0.01, seed=args.seed))
    print("tuning: " + (args.tune or "as in dream_core/frame/temporal/tuning.py"))
    for shot in args.shots.split(","):
        trace(shot, args, dreamer, objective, settings)
        if args.clean:
            noise_swap(shot, args, dreamer, objective, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
