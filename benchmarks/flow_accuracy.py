"""How far the optical flow of temporal mode ``flow`` (OpenCV's DIS on
smoothed renders, dream_core.frame.temporal.estimate_flow) is from the
renderer's own motion, and what it costs, at the scales and presets DIS could
run at. Shots from benchmarks/shots.py, rendered with their Vector pass
(cached in ``--out`` as benchmarks/temporal.py caches them).

End-point error (EPE), per pixel of frame N: the length, in pixels of the
frame, of the estimated backward flow (frame N -> N-1) minus the renderer's
(``vectors_to_flow`` of frame N's Vector pass). Counted only where the
renderer's motion is valid and not occluded: the renderer's backward flow
lands inside frame N-1 (every Catmull-Rom tap inside), and following it and
then frame N-1's forward vectors comes back home (``consistency`` > 0.5: an
error under ~0.4 px + 4% of the motion). Pooled over the valid pixels of every
pair: the mean, and the share of pixels off by more than 1 px and 3 px. Time:
the median over the pairs of one ``estimate_flow`` call (both frames'
grey images, DIS, the flow resized back), after one call to warm up.

``--upscale 1920x1080`` also times (and scores, for what it is worth: the
renders are smooth there) every configuration on the same frames resized
bicubically to that size, their vectors scaled with them, for sizes too slow
to render on a small CPU.

    .venv/bin/python benchmarks/flow_accuracy.py --shots pan,dolly --size 512x288 --upscale 1920x1080
    .venv/bin/python benchmarks/flow_accuracy.py --shots pan --size 960x540 --pairs 5,15,25,35
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from dream_core.engine import image_tensor  # noqa: E402
from dream_core.frame import temporal  # noqa: E402
from dream_core.frame.pipeline import to_dream_space  # noqa: E402
from dream_core.io import read_image  # noqa: E402

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
CONFIGS = "medium@1,medium@0.5,fast@0.5,ultrafast@0.5,medium@0.25,fast@1"

# Renders only the frames of some pairs of a shot: shots.py's main, on a shorter range per pair.
RENDER_PAIRS = """
import os, sys
sys.argv = sys.argv[:1]
sys.path.insert(0, {bench!r})
import shots
shot, out, width, height, samples, starts = {shot!r}, {out!r}, {width}, {height}, {samples}, {starts!r}
frames = shots.FRAMES[shot]
scene = shots.base_scene(frames, width, height, shots.samples_for(shot, samples))
scene.render.threads_mode, scene.render.threads = "FIXED", 1
if shot in shots.HELD_OUT and shot != "noisy":
    scene.cycles.use_denoising, scene.cycles.denoiser = True, "OPENIMAGEDENOISE"
getattr(shots, "shot_" + shot)(frames, scene)
for start in starts:
    scene.frame_start, scene.frame_end = start, start + 1
    shots.demo_scene.render_exr_sequence(out)
sys.stdout.flush()
os._exit(0)
"""


def render(shot: str, out_dir: str, width: int, height: int, samples: int, starts: list[int]) -> list[int]:
    """Renders the shot (every frame, or the pairs from ``starts``) unless
    cached; returns the first frame of each pair."""
    shots = __import__("shots")
    frames = shots.FRAMES[shot]
    starts = starts or list(range(1, frames))
    needed = sorted({f for s in starts for f in (s, s + 1)})
    if not all(os.path.exists(frame_path(out_dir, f)) for f in needed):
        samples = shots.samples_for(shot, samples)
        if len(needed) == frames:
            command = [os.path.join(ROOT, "benchmarks", "shots.py"), shot, out_dir, str(width), str(height),
                       str(samples)]
        else:
            script = RENDER_PAIRS.format(bench=os.path.join(ROOT, "benchmarks"), shot=shot, out=out_dir,
                                         width=width, height=height, samples=samples, starts=starts)
            command = ["-c", script]
        subprocess.run([sys.executable, *command], check=True, capture_output=True)
    return starts


def frame_path(out_dir: str, frame: int) -> str:
    return os.path.join(out_dir, f"frame_{frame:04d}.exr")


def load_pair(out_dir: str, start: int, size: tuple[int, int] | None):
    """Dream-space renders of frames ``start`` and ``start + 1``, the
    renderer's backward flow of the second and the mask of its valid pixels,
    resized to ``size`` (height, width) if given."""
    first, second = (read_image(frame_path(out_dir, f)) for f in (start, start + 1))
    rgb = [to_dream_space(image_tensor(p.pixels), p.linear)[0] for p in (first, second)]
    backward = temporal.vectors_to_flow(image_tensor(second.vectors))
    forward = temporal.next_flow_from_vectors(image_tensor(first.vectors))
    _, inside = temporal.warp(rgb[0], backward)
    valid = (inside > 0.99) & (temporal.consistency(backward, forward) > 0.5)
    if size is not None:
        gain = torch.tensor([size[1] / backward.shape[-1], size[0] / backward.shape[-2]]).view(1, 2, 1, 1)
        rgb = [F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1) for x in rgb]
        backward = F.interpolate(backward, size=size, mode="nearest") * gain
        valid = F.interpolate(valid.float(), size=size, mode="nearest") > 0.5
    return rgb, backward, valid


def score(pairs, configs: list[str]) -> dict:
    """Per configuration (``preset@scale``): EPE figures over every pair's
    valid pixels and the median ms of a call. The configurations take turns
    on each pair, so that a busy machine slows them alike."""
    runs = {c: (PRESETS[c.split("@")[0]], float(c.split("@")[1])) for c in configs}
    errors, seconds = {c: [] for c in configs}, {c: [] for c in configs}
    for preset, scale in runs.values():
        temporal.estimate_flow(*pairs[0][0], scale=scale, preset=preset)  # warm up
    for (first, second), truth, valid in pairs:
        for config, (preset, scale) in runs.items():
            start = time.perf_counter()
            flow = temporal.estimate_flow(first, second, scale=scale, preset=preset)
            seconds[config].append(time.perf_counter() - start)
            errors[config].append((flow - truth)[0].norm(dim=0)[valid[0, 0]])
    figures = {}
    for config in configs:
        epe = torch.cat(errors[config])
        figures[config] = dict(epe=float(epe.mean()), over1=float((epe > 1).float().mean()),
                               over3=float((epe > 3).float().mean()), ms=1000 * float(np.median(seconds[config])))
    return figures


def report(title: str, pairs, configs: list[str]) -> None:
    first = pairs[0][0][0]
    motion = torch.cat([truth[0].norm(dim=0)[valid[0, 0]] for _, truth, valid in pairs])
    valid = np.mean([float(v.float().mean()) for *_, v in pairs])
    print(f"\n{title}: {first.shape[-1]}x{first.shape[-2]}, {len(pairs)} pairs, {valid:.0%} of pixels valid, "
          f"mean motion {float(motion.mean()):.2f} px")
    print(f"{'DIS preset@scale':16} {'EPE px':>7} {'>1 px':>6} {'>3 px':>6} {'ms':>7}")
    for config, f in score(pairs, configs).items():
        print(f"{config:16} {f['epe']:7.3f} {f['over1']:6.1%} {f['over3']:6.1%} {f['ms']:7.1f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shots", default="pan,dolly", help="pan is in the tuning set; dolly, turntable held out")
    p.add_argument("--size", default="512x288", help="the size the shots are rendered at")
    p.add_argument("--samples", type=int, default=16, help="the tuning set's (held-out shots use their own)")
    p.add_argument("--pairs", default="", help="first frames of the pairs to render and score (default: all)")
    p.add_argument("--upscale", default="", help="also at this size (WxH), the frames resized bicubically")
    p.add_argument("--configs", default=CONFIGS, help="preset@scale, comma separated")
    p.add_argument("--threads", type=int, default=0, help="OpenCV's threads (0: its default)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench_output", "temporal"))
    args = p.parse_args(argv)
    if args.threads:
        cv2.setNumThreads(args.threads)
    torch.set_num_threads(max(1, cv2.getNumThreads()))
    width, height = map(int, args.size.split("x"))
    configs = args.configs.split(",")
    starts = [int(s) for s in args.pairs.split(",") if s]
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; full size up to "
          f"{temporal.TUNING.flow_full_size_up_to} px, then scale {temporal.TUNING.flow_scale}")
    for shot in args.shots.split(","):
        samples = __import__("shots").samples_for(shot, args.samples)
        out_dir = os.path.join(args.out, f"{shot}_{args.size}_{samples}")
        firsts = render(shot, out_dir, width, height, args.samples, starts)
        title = f"{shot} ({samples} samples)"
        report(title, [load_pair(out_dir, s, None) for s in firsts], configs)
        if args.upscale:
            up_w, up_h = map(int, args.upscale.split("x"))
            some = firsts[::max(1, len(firsts) // 8)]  # at most ~8 pairs: 1080p frames are large
            report(f"{title}, resized", [load_pair(out_dir, s, (up_h, up_w)) for s in some], configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
