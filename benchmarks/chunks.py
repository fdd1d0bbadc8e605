"""Chunk seams: the same rendered shot (benchmarks/shots.py) dreamed whole
and in chunks, each chunk as a separate machine would dream it when it
cannot carry on from the chunk before (a fresh sequence): cold or with a
pre-roll of frames dreamed and dropped, and with a fade: the chunk's first
``fade`` frames written as a ramp from the chunk before's chain, carried on
over them, into this chunk's (the shot planner's rule, dream_core.shot.planner),
as frame/crossfade.py fades one into the other or (for comparison) as a
plain pixel average. Per variant it prints:

- seam: flicker of the transitions across chunk boundaries over the mean
  flicker of the transitions elsewhere (1.0: the seam cannot be told); and
  fade: the same for the transitions through the fade's frames (where a
  fade spreads the jump);
- flicker, detail (2x2, last quarter) and strength relative to the whole run;
- faded: the strength (objective) of the faded frames relative to the
  whole run's same frames (a plain average of two unrelated patterns is
  weaker than either);
- the cost: frames dreamed per frame written.

With ``--ray`` it then times the command line on the same frames: the
whole shot in one process, in chunks one after another (``--frames``), and
through ``--ray`` with 1 and 2 actors (and 2 with the frames sent through
the driver); frames per second, the Ray driver's overhead per frame (1
actor against the whole shot in one process) and what sending the frames
through the driver adds.

    .venv/bin/python benchmarks/chunks.py [--shot pan] [--chunk 10] [--prerolls 0,5,10] [--ray]
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from dataclasses import replace

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from dream_core.config import DreamConfig, DreamSettings  # noqa: E402
from dream_core.engine import Dreamer  # noqa: E402
from dream_core.frame import crossfade  # noqa: E402
from dream_core.frame.pipeline import SequenceDreamer  # noqa: E402
from dream_core.shot.planner import seam_share  # noqa: E402

metrics = importlib.import_module("temporal")  # benchmarks/temporal.py: rendering, flicker masks, detail


def dream_range(dreamer, settings, pictures, first: int, last: int, preroll: int) -> tuple[dict, int, object]:
    """Frames first..last (0-based, inclusive) as one machine dreams a chunk;
    returns {index: dream} including the pre-roll's, frames dreamed, and the
    sequence (it carries the chain on past the chunk)."""
    sequence, dreams = SequenceDreamer(), {}
    for i in range(max(0, first - preroll), last + 1):
        dreams[i] = metrics.dream_space(sequence.dream(dreamer, pictures[i], settings, frame=i + 1))
    return dreams, len(dreams), sequence


def chunked(dreamer, objective, settings, pictures, size: int, preroll: int, fade: int, blend: str = "crossfade"):
    """The shot in chunks of ``size``, each its own chain; with ``fade``, a
    chunk's first ``fade`` frames ramp from the chunk before's chain carried
    on over them into this chunk's."""
    out, dreamed, before = {}, 0, None
    for first in range(0, len(pictures), size):
        last = min(first + size, len(pictures)) - 1
        dreams, count, sequence = dream_range(dreamer, settings, pictures, first, last, preroll)
        dreamed += count
        faded = range(first, min(first + fade, last + 1)) if before is not None else range(0)
        for i in range(first, last + 1):
            out[i] = dreams[i]
        for index, i in enumerate(faded):
            carried = metrics.dream_space(before.dream(dreamer, pictures[i], settings, frame=i + 1))
            dreamed += 1
            share = seam_share(index, len(faded))
            if blend == "crossfade":
                source = metrics.dream_space(pictures[i])
                out[i] = crossfade.faded(dreamer, objective, settings.config, source, carried, dreams[i], share)
            else:
                out[i] = carried + share * (dreams[i] - carried)
        before = sequence
    return [out[i] for i in range(len(pictures))], dreamed


def cli_seconds(*args: str) -> float:
    """Wall time of one ``python -m dream_core dream`` run."""
    import subprocess

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dream_core", "dream", *args, "-q"], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True)
    return time.perf_counter() - start


def time_command_line(folder: str, frames: int, chunk: int, preroll: int, fade: int) -> None:
    import tempfile

    dream = ["--temporal", "vectors", "--octaves", "3", "--iterations", "10", "--seed", "2", "--device", "cpu"]
    chunks = ["--preroll", str(preroll), "--fade", str(fade)]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"one process, whole shot": cli_seconds(folder, "-o", f"{tmp}/whole", *dream)}
        local = 0.0
        for first in range(1, frames + 1, chunk):
            local += cli_seconds(folder, "-o", f"{tmp}/local", "--frames", f"{first}-{first + chunk - 1}", *dream,
                                 *chunks)
        runs["chunks one after another"] = local
        for actors in (1, 2):
            runs[f"ray, {actors} actor(s)"] = cli_seconds(folder, "-o", f"{tmp}/ray{actors}", "--ray", "--chunk-size",
                                                           str(chunk), "--ray-actors", str(actors), *dream, *chunks)
        runs["ray, 2 actor(s), via driver"] = cli_seconds(folder, "-o", f"{tmp}/driven", "--ray", "--chunk-size",
                                                          str(chunk), "--ray-actors", "2", "--ray-io", "driver",
                                                          *dream, *chunks)
    print(f"\ncommand line, {frames} frames, chunks of {chunk}, pre-roll {preroll}, fade {fade}:")
    for name, seconds in runs.items():
        print(f"  {name:28} {seconds:7.1f} s  {frames / seconds:5.2f} frames/s")
    # the chunks in order carry on from the frame before (no pre-roll); Ray's chunks run side by side
    print(f"  Ray driver overhead (1 actor vs the whole shot in one process): "
          f"{(runs['ray, 1 actor(s)'] - runs['one process, whole shot']) / frames:.2f} s/frame")
    print(f"  frames through the driver (vs the shared folder, 2 actors): "
          f"{(runs['ray, 2 actor(s), via driver'] - runs['ray, 2 actor(s)']) / frames:+.2f} s/frame")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shot", default="pan")
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--prerolls", default="0,5,10")
    p.add_argument("--fade", type=int, default=5, help="cross-fade length for the faded variant")
    p.add_argument("--size", default="256x144")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--out", default=os.path.join(ROOT, "bench_output", "temporal"))
    p.add_argument("--device", default="auto")
    p.add_argument("--ray", action="store_true", help="also time the command line: local chunks and Ray")
    args = p.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    pictures = metrics.render(args.shot, os.path.join(args.out, f"{args.shot}_{args.size}_{args.samples}"), width,
                              height, args.samples)
    sources = [metrics.dream_space(picture) for picture in pictures]
    flows, masks = metrics.motion(pictures, sources)
    dreamer = Dreamer("lite0", device=args.device)
    objective = dreamer.objective()
    settings = DreamSettings(temporal="vectors", config=DreamConfig(octaves=3, iterations=10, step=0.01, seed=2))
    print(f"{args.shot}: {len(pictures)} frames {args.size}, chunks of {args.chunk}, vectors, device {dreamer.device}")

    start = time.perf_counter()
    whole, _ = chunked(dreamer, objective, settings, pictures, len(pictures), 0, 0)
    per_frame = (time.perf_counter() - start) / len(pictures)
    starts = range(args.chunk, len(pictures), args.chunk)
    faded = sorted(i for first in starts for i in range(first, min(first + args.fade, len(pictures))))
    # transition i: frame i -> i + 1; the seams' and the fades' transitions
    boundaries = {first - 1 for first in starts}
    fading = {i for i in faded if i + 1 < len(pictures)}
    seams = boundaries | fading
    scores = [dreamer.score(d, objective) for d in whole]
    reference = dict(flicker=metrics.step_flicker(whole, flows, masks), half=metrics.detail(whole, sources, 2),
                     energy=np.mean(scores), faded=np.mean([scores[i] for i in faded]))
    variants = [(f"preroll {n}", n, 0, "crossfade") for n in map(int, args.prerolls.split(","))]
    variants += [(f"fade {args.fade}", 0, args.fade, "crossfade"),
                 (f"fade {args.fade}, pixel average", 0, args.fade, "average"),
                 (f"preroll {args.fade}, fade {args.fade}", args.fade, args.fade, "crossfade")]
    print(f"{'variant':26} {'seam':>6} {'fade':>6} {'flicker':>8} {'detail 2x2':>10} {'strength':>8} {'faded':>6} "
          f"{'cost':>6}")
    inside_whole = reference["flicker"][[i not in seams for i in range(len(whole) - 1)]].mean()
    print(f"{'whole (no chunks)':26} {reference['flicker'][sorted(boundaries)].mean() / inside_whole:6.2f} "
          f"{reference['flicker'][sorted(fading)].mean() / inside_whole:6.2f} {1.0:8.2f} {1.0:10.2f} {1.0:8.2f} "
          f"{1.0:6.2f} {1.0:6.2f}   ({per_frame:.2f} s/frame)")
    for name, preroll, fade, blend in variants:
        dreams, dreamed = chunked(dreamer, objective, replace(settings), pictures, args.chunk, preroll, fade, blend)
        flick = metrics.step_flicker(dreams, flows, masks)
        inside = flick[[i not in seams for i in range(len(dreams) - 1)]].mean()
        half = metrics.quarters(metrics.detail(dreams, sources, 2))[1] / metrics.quarters(reference["half"])[1]
        chunk_scores = [dreamer.score(d, objective) for d in dreams]
        energy = np.mean(chunk_scores) / reference["energy"]
        faded_energy = np.mean([chunk_scores[i] for i in faded]) / reference["faded"]
        seam, fade = flick[sorted(boundaries)].mean() / inside, flick[sorted(fading)].mean() / inside
        print(f"{name:26} {seam:6.2f} {fade:6.2f} {flick.mean() / reference['flicker'].mean():8.2f} "
              f"{half:10.2f} {energy:8.2f} {faded_energy:6.2f} {dreamed / len(pictures):6.2f}")
    if args.ray:
        time_command_line(os.path.join(args.out, f"{args.shot}_{args.size}_{args.samples}"), len(pictures),
                          args.chunk, 0, args.fade)
    return 0


if __name__ == "__main__":
    sys.exit(main())
