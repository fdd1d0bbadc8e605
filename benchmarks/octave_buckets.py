"""What rounding the octave sizes does to a dream.

A compiled engine is built per tile shape, so every octave of every frame
size costs a build on a GPU (minutes, docs/BENCHMARKS.md). Rounding the
smaller octaves' sides to a multiple of ``--multiple`` lets frame sizes
share builds. This measures the price, on photographs (never used to tune
anything): each is dreamed with exact octave sizes, with rounded ones, and
with exact ones under another jitter seed (a change every user accepts as
the same dream), and reports

- strength: the objective of the dream, scored at full size, relative to
  the exact dream's (1.0: as strong);
- change: the mean |dream - photo|, relative to the exact dream's;
- difference: mean |dream - exact dream|, for the rounded dream and for
  the other seed; rounding costs nothing a user would call a different
  dream when its difference is no larger than a new seed's.

    .venv/bin/python benchmarks/octave_buckets.py [--size 768x432] [--multiple 32]
"""
import argparse
import os
import sys
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dream_core.config import DreamConfig  # noqa: E402
from dream_core.engine import Dreamer, image_tensor  # noqa: E402
from dream_core.engine import dreamer as dreamer_module  # noqa: E402
from dream_core.engine.octaves import octave_shapes  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def rounded_shapes(multiple: int):
    """octave_shapes with every octave but the full-size one rounded to ``multiple``."""
    def shapes(height, width, octaves, scale):
        exact = octave_shapes(height, width, octaves, scale)
        return [(max(multiple, round(h / multiple) * multiple), max(multiple, round(w / multiple) * multiple))
                for h, w in exact[:-1]] + exact[-1:]
    return shapes


def photo(name: str, width: int, height: int) -> torch.Tensor:
    import cv2
    import skimage.data

    pixels = getattr(skimage.data, name)()[..., :3]
    h, w = pixels.shape[:2]
    scale = max(width / w, height / h)  # cover, then crop the middle
    resized = cv2.resize(pixels, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return image_tensor(resized[top:top + height, left:left + width].astype(np.float32) / 255)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="768x432")
    p.add_argument("--multiple", type=int, default=32)
    p.add_argument("--iterations", type=int, default=10)
    args = p.parse_args()
    width, height = map(int, args.size.split("x"))
    config = DreamConfig(iterations=args.iterations, tile=0)
    dreamer = Dreamer("lite0", device="cpu")
    objective = dreamer.objective()
    exact_sizes = octave_shapes(height, width, config.octaves, config.octave_scale)
    print(f"lite0 (its own weights), {width}x{height}, {config.octaves} octaves x {config.octave_scale}, "
          f"{config.iterations} iterations; octaves {exact_sizes} -> "
          f"{rounded_shapes(args.multiple)(height, width, config.octaves, config.octave_scale)}")
    rows = []
    for name in PHOTOS:
        image = photo(name, width, height)
        exact = dreamer.run(image, objective, config)
        other_seed = dreamer.run(image, objective, config.replace(seed=config.seed + 1))
        with mock.patch.object(dreamer_module, "octave_shapes", rounded_shapes(args.multiple)):
            rounded = dreamer.run(image, objective, config)
        score = dreamer.score(exact, objective, config)
        row = {"photo": name,
               "strength": dreamer.score(rounded, objective, config) / score,
               "seed_strength": dreamer.score(other_seed, objective, config) / score,
               "change": float((rounded - image).abs().mean() / (exact - image).abs().mean()),
               "difference": float((rounded - exact).abs().mean()),
               "seed_difference": float((other_seed - exact).abs().mean())}
        rows.append(row)
        print(f"  {name:10} strength {row['strength']:.3f} (other seed {row['seed_strength']:.3f}), change "
              f"{row['change']:.3f}, difference from the exact dream {row['difference']:.4f} "
              f"(other seed {row['seed_difference']:.4f})")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "photo"}
    print(f"  mean       strength {mean['strength']:.3f} (other seed {mean['seed_strength']:.3f}), change "
          f"{mean['change']:.3f}, difference {mean['difference']:.4f} (other seed {mean['seed_difference']:.4f})")


if __name__ == "__main__":
    main()
