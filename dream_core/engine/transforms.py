"""Random jitter: rolling the image a few pixels before each gradient step
hides the network's stride grid and, with tiling, moves tile seams around so
none can build up."""
from __future__ import annotations

import random

import torch


class Jitter:
    """Random integer shifts in ``[-amount, amount]`` drawn from a seeded RNG
    (Python's, so drawing never waits on the GPU)."""

    def __init__(self, amount: int, seed: int) -> None:
        self.amount = int(amount)
        self.rng = random.Random(seed)

    def draw(self) -> tuple[int, int]:
        if self.amount <= 0:
            return 0, 0
        return self.rng.randint(-self.amount, self.amount), self.rng.randint(-self.amount, self.amount)

    def __repr__(self) -> str:
        return f"Jitter({self.amount})"


def roll(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    if dy == 0 and dx == 0:
        return x
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
