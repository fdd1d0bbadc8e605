"""Cross-fading two chains' dreams of one frame at a chunk seam, keeping
the dream's strength.

Two chains started apart grow unrelated patterns. A plain pixel average of
them carries half of each: the network's features (hundreds of pixels
across at the mid layers) see neither pattern whole, and the faded frames
look washed out. A dissolve (each pixel from one chain or the other) does
no better: it cuts both patterns. So the two dreams are averaged by the
ramp and the average is dreamed a little further at the finest octave, as
much as it takes to be as strong as the two dreams are (the network makes
one pattern of the two again; nothing at either end of the ramp).

Measured on the pan shot (benchmarks/chunks.py, lite0, chunks of 10, a fade
of 5; docs/BENCHMARKS.md): the faded frames' strength (the objective) 0.81
of the uninterrupted run's with the average alone, 1.01 with the
refinement; the flicker at the seam 1.09 and 1.13 times the flicker
elsewhere, through the fade 1.10 and 1.21 (a hard cut: 3.30 at the seam).
A fixed refinement of 5 steps over-grew (1.04-1.10 strength, 1.48-1.99
through the fade); a dissolve (each pixel from one dream or the other)
measured 0.82 strength and 1.39 through the fade.
"""
from __future__ import annotations

import torch

from ..config import DreamConfig
from ..engine import Dreamer
from ..engine.objectives import Objective

MAX_REFINE = 0.5  # the ascent on the mixed frame: at most this share of one octave's ascent, in half steps


def faded(dreamer: Dreamer, objective: Objective, config: DreamConfig, render: torch.Tensor, before: torch.Tensor,
          after: torch.Tensor, share: float) -> torch.Tensor:
    """``share`` of the way from the dream ``before`` to the dream ``after``
    of ``render`` (dream-space sRGB [1, 3, H, W]), made one pattern again:
    dreamed on, a step at a time at the finest octave, until it raises the
    objective over the render as much as the two dreams do, by the ramp."""
    mixed = (1.0 - share) * before + share * after
    if not 0.0 < share < 1.0 or config.iterations == 0 or config.step == 0:
        return mixed
    base, first, second, current = dreamer.scores(torch.cat([render, before, after, mixed]), objective, config)
    wanted = base + (1.0 - share) * (first - base) + share * (second - base)
    step = config.replace(octaves=1, iterations=1, step=config.step / 2)  # half steps: it stops nearer the mark
    for index in range(max(1, round(2 * MAX_REFINE * config.iterations))):
        if current >= wanted:
            break
        mixed = dreamer.run(mixed, objective, step.replace(seed=config.seed + index))
        current = dreamer.score(mixed, objective, config)
    return mixed
