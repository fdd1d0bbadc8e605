"""Temporal coherence benchmark on rendered shots (benchmarks/shots.py). Two
sets: the tuning set (``pan`` with parallax and disocclusions, a fast
``occluder``, a 120-frame ``orbit``, a denoised ``push`` in), on which the temporal constants were
chosen, and the held-out set (a slow ``turntable``, a ``dolly`` in, a
``noisy`` render, depth of field, motion blur, a deforming mesh), never used
to choose one: a change is chosen on the first and judged on the second, and
every summary reports both. Each shot is dreamed in every temporal mode with
the same settings; per shot and mode it prints:

- flicker: mean |dream N - warp(dream N-1)| over non-occluded pixels (warped
  by the renderer's vectors), divided by the same figure for the renders;
  then its 10th and 90th percentile over the steps (a boil is the same on
  every step, a pop is one step);
- pattern: the same flicker at the pattern's scale, both frames smoothed by
  a Gaussian of sigma 1 px first (dream_core.frame.temporal.pattern_flicker).
  No warp moves 2-3 px detail by a fraction of a pixel exactly, so at full
  detail a dream that did not change at all, only moved, reads well above 1;
  each shot's heading prints that floor (the flicker of the middle frame's
  dream moved by an exact Fourier shift of (0.37, 0.21) px), at full detail
  and at the pattern's scale;
- E_warp: the warping error of Lai et al. (ECCV 2018), x 1000, absolute (not
  relative to the renders; theirs is printed in the shot's heading): per
  pair of frames, the squared RGB distance (summed over the channels, values
  in [0, 1], dream-space sRGB) between frame t and frame t-1 warped into it,
  averaged over the non-occluded pixels (the mask of the flicker), then
  averaged over the pairs; warped by the renderer's vectors, not by
  estimated flow as in the paper (see dream_core.frame.temporal.warp_error);
- detail: mean |Laplacian| of the dream's luma over the render's, relative to
  the same ratio for independent frames (``none``), in the first and the last
  quarter of the shot, at full resolution and at the pattern's scale (2x2
  averaged first): below 1 the coherent dream went soft, above it over-grew;
- strength: the objective (block energy) relative to ``none``;
- x/y: the fine pattern's mean gradient across x over the one across y, in
  the last quarter (about 1 for independent frames; further from 1, streaks);
- drift: brightness and saturation of the last quarter relative to ``none``,
  and the saturation's worst frame (a colour shift can come and go mid-shot);
- revealed: saturation and 2x2 detail, relative to ``none`` on the same
  pixels, where the scene came into view after the first frame (behind
  moving objects, at the frame's edge): there a carried dream can only add
  what it dreams afresh beside the carried pattern, and a weak or smeared
  fresh dream shows as pale trails that the whole-frame figures average away;
- seconds per frame (the median after the first), and relative to
  ``none``; the modes take turns frame by frame, so each ratio is measured
  side by side under the same load.

It also writes, per shot, a picture of frames early, middle and late at full
size (rows) as render | none | vectors | flow (columns): look at it.

``--tune name=value[,name=value]`` dreams every mode with those constants of
dream_core/frame/temporal/tuning.py changed (``--tune regrowth=1.0``; a
mode list joined by ``+``: ``--tune sharp_from=vectors+flow``), so a constant
can be swept without touching the code; the heading prints them. The
figures' masks keep the default constants, so every sweep is measured alike.

    .venv/bin/python benchmarks/temporal.py [--set tuning|held-out|both] [--shots pan,dolly] [--size 256x144]
                                            [--tune regrowth=1.0]
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
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dream_core.config import DreamConfig, DreamSettings  # noqa: E402
from dream_core.engine import Dreamer, image_tensor, tensor_pixels  # noqa: E402
from dream_core.engine.device import use_cpu_threads  # noqa: E402
from dream_core.frame import temporal  # noqa: E402
from dream_core.frame.colour import luma  # noqa: E402
from dream_core.frame.pipeline import SequenceDreamer, to_dream_space  # noqa: E402
from dream_core.io import Picture, read_image  # noqa: E402

MODES = ("none", "blend", "flow", "vectors")
SHOWN = ("none", "vectors", "flow")  # the preview's columns after the render


def render(shot: str, out_dir: str, width: int, height: int, samples: int) -> list[Picture]:
    frames = shots_module().FRAMES[shot]
    if not os.path.exists(os.path.join(out_dir, f"frame_{frames:04d}.exr")):
        subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "shots.py"), shot, out_dir, str(width),
                        str(height), str(samples)], check=True, capture_output=True)
    return [read_image(os.path.join(out_dir, f"frame_{i:04d}.exr")) for i in range(1, frames + 1)]


def shots_module():
    """benchmarks/shots.py (it imports bpy: only once a shot is needed)."""
    return __import__("shots")


def motion(pictures: list[Picture], sources: list[torch.Tensor]):
    """Flow taking frame i into i+1 (the renderer's) and the non-occluded
    mask, by the default tuning whatever ``--tune`` says (the metric stays put)."""
    flows, masks = [], []
    for prev, cur, prev_rgb, cur_rgb in zip(pictures, pictures[1:], sources, sources[1:]):
        flow = temporal.vectors_to_flow(image_tensor(cur.vectors))
        warped, inside = temporal.warp(prev_rgb, flow)
        agree = temporal.consistency(flow, temporal.next_flow_from_vectors(image_tensor(prev.vectors)))
        masks.append(inside * agree * temporal.reliability(warped, cur_rgb))
        flows.append(flow)
    return flows, masks


def dream_modes(dreamer, settings: DreamSettings, pictures, modes: list[str], tuning: temporal.Tuning) -> dict:
    """Each mode's dreams of the shot and its seconds per frame. The modes
    take turns frame by frame, so every mode's frame N is timed under the
    same load as the others' (a machine that slows for a minute slows them
    all): the ratios to ``none`` are measured side by side. Seconds per
    frame: the median after the first frame (a stray pause is not the mode's)."""
    sequences = {mode: SequenceDreamer(tuning) for mode in modes}
    dreams: dict[str, list] = {mode: [] for mode in modes}
    seconds: dict[str, list] = {mode: [] for mode in modes}
    for i, picture in enumerate(pictures):
        for mode in modes:
            start = time.perf_counter()
            out = sequences[mode].dream(dreamer, picture, replace(settings, temporal=mode), frame=i + 1)
            seconds[mode].append(time.perf_counter() - start)
            dreams[mode].append(dream_space(out))
    return {mode: (dreams[mode], float(np.median(seconds[mode][1:] or seconds[mode]))) for mode in modes}


def dream_space(picture: Picture) -> torch.Tensor:
    return to_dream_space(image_tensor(picture.pixels), picture.linear)[0]


LAPLACIAN = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)


def sharpness(rgb: torch.Tensor, scale: int) -> float:
    y = luma(rgb)
    if scale > 1:
        y = F.avg_pool2d(y, scale)
    return float(F.conv2d(y, LAPLACIAN).abs().mean())


def detail(dreams, sources, scale: int) -> np.ndarray:
    """Per frame: the dream's sharpness over its render's."""
    return np.array([sharpness(d, scale) / max(sharpness(s, scale), 1e-9) for d, s in zip(dreams, sources)])


def streaks(dream: torch.Tensor, source: torch.Tensor) -> float:
    """The fine pattern's (1-2 px) mean |d/dx| over its mean |d/dy|."""
    fine = temporal.fine_scales(luma(dream - source))
    across_x = (fine[..., :, 1:] - fine[..., :, :-1]).abs().mean()
    across_y = (fine[..., 1:, :] - fine[..., :-1, :]).abs().mean()
    return float(across_x / across_y.clamp(min=1e-9))


def revealed(flows, masks) -> list[torch.Tensor]:
    """Per frame, the pixels that were not in view in the first frame: the
    renderer's motion traced back, through the non-occluded masks."""
    seen = torch.ones_like(masks[0])
    regions = [seen < 0.5]
    for flow, mask in zip(flows, masks):
        seen = mask * temporal.warp(seen, flow)[0]
        regions.append(seen < 0.5)
    return regions


def _pattern_scale_detail(rgb: torch.Tensor) -> torch.Tensor:
    """|Laplacian| of the luma averaged 2x2, per pixel at full size."""
    y = F.avg_pool2d(luma(rgb), 2)
    return F.interpolate(F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), LAPLACIAN).abs(), scale_factor=2)


def revealed_figures(dreams, independent, regions, least: float = 0.01) -> tuple[float, float]:
    """Saturation and 2x2 detail of ``dreams`` over ``independent``'s on the
    revealed pixels, averaged over the frames where they are at least
    ``least`` of the frame (nan where none is)."""
    ratios = []
    for dream, alone, region in zip(dreams, independent, regions):
        if float(region.float().mean()) < least:
            continue
        pick = region.expand_as(dream[:, :1])
        spread = [float(temporal.colour_stats(x)[:, 1:2][pick].mean()) for x in (dream, alone)]
        sharp = [float(_pattern_scale_detail(x)[pick].mean()) for x in (dream, alone)]
        ratios.append((spread[0] / max(spread[1], 1e-9), sharp[0] / max(sharp[1], 1e-9)))
    return tuple(np.mean(ratios, axis=0)) if ratios else (float("nan"), float("nan"))


def quarters(values: np.ndarray) -> tuple[float, float]:
    q = max(1, len(values) // 4)
    return float(values[:q].mean()), float(values[-q:].mean())


def preview(path: str, sources, results, modes: list[str], frames: list[int]) -> None:
    from PIL import Image

    rows = [torch.cat([sources[f]] + [results[m]["dreams"][f] for m in modes], dim=-1) for f in frames]
    grid = tensor_pixels(torch.cat(rows, dim=-2))
    Image.fromarray((grid.clip(0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def shot_results(shot: str, args, dreamer, objective, settings):
    """The shot's renders, their motion and each mode's dreams and figures."""
    width, height = map(int, args.size.split("x"))
    samples = shots_module().samples_for(shot, args.samples)
    pictures = render(shot, os.path.join(args.out, f"{shot}_{args.size}_{samples}"), width, height, samples)
    sources = [dream_space(p) for p in pictures]
    flows, masks = motion(pictures, sources)
    base = dict(flicker=temporal.flicker(sources, flows, masks), e_warp=temporal.warp_error(sources, flows, masks),
                pattern=temporal.pattern_flicker(sources, flows, masks), steps=step_flicker(sources, flows, masks),
                regions=revealed(flows, masks), samples=samples)
    results = {}
    for mode, (dreams, spf) in dream_modes(dreamer, settings, pictures, args.modes.split(","), args.tuning).items():
        results[mode] = dict(flicker=temporal.flicker(dreams, flows, masks) / base["flicker"], spf=spf,
                             pattern=temporal.pattern_flicker(dreams, flows, masks) / base["pattern"],
                             e_warp=temporal.warp_error(dreams, flows, masks),
                             steps=step_flicker(dreams, flows, masks) / base["steps"], dreams=dreams,
                             energy=float(np.mean([dreamer.score(d, objective) for d in dreams])),
                             full=detail(dreams, sources, 1), half=detail(dreams, sources, 2),
                             streaks=np.array([streaks(d, s) for d, s in zip(dreams, sources)]),
                             colour=np.array([temporal.brightness_saturation(d).tolist() for d in dreams]))
    return pictures, sources, base, results


EXACT_MOVE = (0.37, 0.21)  # px: a sub-pixel move in both directions, as a slow shot's


def measure_floor(dream: torch.Tensor, base: dict, margin: int = 8) -> tuple[float, float]:
    """The flicker and pattern flicker (relative to the renders') of ``dream``
    moved exactly by EXACT_MOVE: what the measure reads on a frame whose
    pattern did not change at all, only moved (away from the edges, where
    the Fourier shift wraps round)."""
    flow = torch.tensor(EXACT_MOVE, dtype=dream.dtype).neg().view(1, 2, 1, 1).expand(1, 2, *dream.shape[-2:])
    mask = torch.zeros_like(dream[:, :1])
    mask[..., margin:-margin, margin:-margin] = 1.0
    pair = [dream, temporal.moved_exactly(dream, *EXACT_MOVE)]
    return (temporal.flicker(pair, [flow], [mask]) / base["flicker"],
            temporal.pattern_flicker(pair, [flow], [mask]) / base["pattern"])


def step_flicker(frames, flows, masks) -> np.ndarray:
    """The flicker of each step (frame i to i+1) on its own."""
    return np.array([temporal.flicker(frames[i:i + 2], flows[i:i + 1], masks[i:i + 1]) for i in range(len(flows))])


def figures(r: dict, none: dict, regions, frames: int) -> dict:
    """One mode's row, relative to independent frames (``none``)."""
    q = max(1, frames // 4)
    drift = r["colour"][-q:].mean(axis=0) / none["colour"][-q:].mean(axis=0) - 1
    saturation = r["colour"][:, 1] / none["colour"][:, 1] - 1
    return dict(flicker=r["flicker"], pattern=r["pattern"], p10=float(np.percentile(r["steps"], 10)),
                p90=float(np.percentile(r["steps"], 90)), e_warp=1000 * r["e_warp"],
                full=np.array(quarters(r["full"])) / np.array(quarters(none["full"])),
                half=np.array(quarters(r["half"])) / np.array(quarters(none["half"])),
                strength=r["energy"] / none["energy"], streaks=quarters(r["streaks"])[1], drift=drift,
                worst=saturation[np.abs(saturation).argmax()],
                revealed=revealed_figures(r["dreams"], none["dreams"], regions), spf=r["spf"],
                time=r["spf"] / none["spf"])


def bench_shot(shot: str, set_name: str, args, dreamer, objective, settings) -> list[tuple]:
    """Prints the shot's table and writes its preview; returns its rows for the summary."""
    pictures, sources, base, results = shot_results(shot, args, dreamer, objective, settings)
    none = results["none"]
    shown_mode = "vectors" if "vectors" in results else next(iter(results))
    floor = measure_floor(results[shown_mode]["dreams"][len(pictures) // 2], base)
    print(f"\n{shot} ({set_name}): {len(pictures)} frames {args.size}, {base['samples']} samples; renders' own "
          f"flicker {base['flicker']:.4f}, E_warp x1000 {1000 * base['e_warp']:.3f}; a {shown_mode} dream moved "
          f"exactly by {EXACT_MOVE} px reads flicker {floor[0]:.2f}, pattern {floor[1]:.2f}")
    print(f"{'mode':8} {'flicker':>7} {'pattern':>7} {'p10-p90':>11} {'E_warp':>7} {'detail full':>13} "
          f"{'detail 2x2':>13} {'strength':>8} {'x/y':>5} {'bright':>7} {'satur':>7} {'worst':>7} "
          f"{'revealed':>9} {'s/frame':>7}")
    rows = []
    for mode, r in results.items():
        f = figures(r, none, base["regions"], len(pictures))
        rows.append((set_name, shot, mode, f))
        print(f"{mode:8} {f['flicker']:7.2f} {f['pattern']:7.2f} {f['p10']:5.2f}-{f['p90']:<5.2f} {f['e_warp']:7.3f} "
              f"{f['full'][0]:6.2f}>{f['full'][1]:5.2f} {f['half'][0]:6.2f}>{f['half'][1]:5.2f} "
              f"{f['strength']:8.2f} {f['streaks']:5.2f} {f['drift'][0]:+7.1%} {f['drift'][1]:+7.1%} "
              f"{f['worst']:+7.1%} {f['revealed'][0]:4.2f}/{f['revealed'][1]:4.2f} {f['spf']:7.2f}")
    n = len(pictures)
    path = os.path.join(args.out, f"{shot}_preview.png")
    shown = [m for m in SHOWN if m in results]
    preview(path, sources, results, shown, [min(3, n - 1), n // 2, n - 1])
    print(f"frames {min(4, n)}, {n // 2 + 1}, {n} as render | {' | '.join(shown)}: {path}")
    return rows


def summary(rows: list[tuple]) -> None:
    """Both sets in one table: the figures the targets are set on."""
    print(f"\n{'set':9} {'shot':10} {'mode':8} {'flicker':>7} {'pattern':>7} {'E_warp':>7} {'2x2 late':>8} "
          f"{'strength':>8} {'time':>5}")
    for set_name, shot, mode, f in rows:
        print(f"{set_name:9} {shot:10} {mode:8} {f['flicker']:7.2f} {f['pattern']:7.2f} {f['e_warp']:7.3f} "
              f"{f['half'][1]:8.2f} {f['strength']:8.2f} {f['time']:5.2f}")


def chosen_shots(args) -> list[tuple[str, str]]:
    """(set, shot) pairs: ``--shots`` if given, else every shot of ``--set``."""
    sets = shots_module().SETS
    if args.shots:
        return [(next((n for n, s in sets.items() if shot in s), "?"), shot) for shot in args.shots.split(",")]
    names = list(sets) if args.set == "both" else [args.set]
    return [(name, shot) for name in names for shot in sets[name]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="both", choices=("tuning", "held-out", "both"))
    p.add_argument("--shots", default="", help="these shots only (each reported with its set)")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--size", default="256x144")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--out", default=os.path.join(ROOT, "bench_output", "temporal"))
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: the engine's choice)")
    p.add_argument("--tune", default="", metavar="NAME=VALUE[,NAME=VALUE]",
                   help="the temporal constants (dream_core/frame/temporal/tuning.py) to change, for every mode")
    args = p.parse_args(argv)
    try:
        args.tuning = temporal.TUNING.with_overrides(args.tune)
    except ValueError as e:
        p.error(f"--tune: {e}")
    use_cpu_threads(args.threads)
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    os.makedirs(args.out, exist_ok=True)
    dreamer = Dreamer("lite0", device=args.device)
    objective = dreamer.objective()
    config = DreamConfig(octaves=3, iterations=10, step=0.01, seed=args.seed)
    settings = DreamSettings(config=config)
    print(f"lite0 {objective!r}, 3 octaves x 10 iterations, step 0.01, seed {args.seed}, device {dreamer.device}")
    changes = args.tuning.changes()
    print("tuning: " + (", ".join(f"{name}={value!r}" for name, value in changes.items()) + " (the rest as in "
                        "tuning.py)" if changes else "as in dream_core/frame/temporal/tuning.py"))
    rows = []
    for set_name, shot in chosen_shots(args):
        rows += bench_shot(shot, set_name, args, dreamer, objective, settings)
    summary(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
