"""Bounded-memory gradients: the image is cut into equal tiles, each seen
with a margin of context so its core gets nearly the gradient the whole image
would give it. Equal sizes let the tiles of one frame run as one batch.

Tile origins and sizes are multiples of ``ALIGN`` (the networks' total
stride): a tile then samples the same feature grid as the whole image would,
and the tiled gradient matches the untiled one up to the margins' context.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import BadSetting

ALIGN = 32


@dataclass(frozen=True)
class TileGrid:
    """``rows × cols`` cores of ``core`` px covering an H×W image; each is
    read with ``margin`` px of context from the padded image."""

    height: int
    width: int
    core: int
    margin: int
    rows: int
    cols: int

    @property
    def single(self) -> bool:
        return self.rows * self.cols == 1 and self.margin == 0

    @property
    def origins(self) -> list[tuple[int, int]]:
        return [(r * self.core, c * self.core) for r in range(self.rows) for c in range(self.cols)]

    @property
    def side(self) -> int:
        return self.core + 2 * self.margin


def _round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


def tile_grid(height: int, width: int, tile: int, margin: int) -> TileGrid:
    """Tiles of at most ``tile`` px a side (core plus margins); ``tile <= 0``
    or an image that fits means one untiled pass."""
    if tile <= 0 or (height <= tile and width <= tile):
        return TileGrid(height, width, max(height, width), 0, 1, 1)
    margin = _round_up(margin, ALIGN)
    core = (tile - 2 * margin) // ALIGN * ALIGN
    if core < ALIGN:
        raise BadSetting(f"tile size {tile} leaves no room inside {margin} px context margins (the tile margin, "
                         f"rounded up to a multiple of {ALIGN}); "
                         f"use at least {2 * margin + ALIGN}")
    rows, cols = math.ceil(height / core), math.ceil(width / core)
    # the smallest aligned core that needs no more tiles: less padding to compute
    core = min(core, _round_up(math.ceil(max(height / rows, width / cols)), ALIGN))
    return TileGrid(height, width, core, margin, math.ceil(height / core), math.ceil(width / core))


def _pad(x: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    m = grid.margin
    bottom = m + grid.rows * grid.core - grid.height
    right = m + grid.cols * grid.core - grid.width
    pads = (m, right, m, bottom)
    # reflect needs pads smaller than the image; replicate otherwise
    mode = "reflect" if max(pads) < min(grid.height, grid.width) else "replicate"
    return F.pad(x, pads, mode=mode)


def batches(grid: TileGrid, batch: int) -> Iterator[list[tuple[int, int]]]:
    origins = grid.origins
    for i in range(0, len(origins), max(1, batch)):
        yield origins[i : i + batch]


def tile_shapes(grid: TileGrid, batch: int, channels: int = 3) -> list[tuple[int, ...]]:
    """The shapes :func:`tiled_gradient` hands ``value_fn`` for one image."""
    if grid.single:
        return [(1, channels, grid.height, grid.width)]
    return [(len(group), channels, grid.side, grid.side) for group in batches(grid, batch)]


def _cut(padded: torch.Tensor, grid: TileGrid, group: list[tuple[int, int]]) -> torch.Tensor:
    """The tiles at ``group``'s origins, each with its margins, as one batch."""
    side = grid.side
    return torch.cat([padded[..., y : y + side, x0 : x0 + side] for y, x0 in group])


def tiled_gradient(
    x: torch.Tensor,
    value_fn: Callable[[torch.Tensor], torch.Tensor],
    grid: TileGrid,
    batch: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the objective w.r.t. ``x`` [N, C, H, W], and the mean
    objective value over tiles. ``value_fn`` maps a batch of tiles to one
    value per tile. Each forward takes ``batch`` tile places of every image
    (at least one place: N tiles)."""
    if x.is_cuda:  # compiled CUDA graphs: each call starts a step, outputs are reused
        torch.compiler.cudagraph_mark_step_begin()
    if grid.single:
        x = x.detach().requires_grad_(True)
        value = value_fn(x)
        (grad,) = torch.autograd.grad(value.sum(), x)
        return grad.clone(), value.detach().mean()
    m, core = grid.margin, grid.core
    padded = _pad(x.detach(), grid)
    grad = torch.empty(x.shape[0], x.shape[1], grid.rows * core, grid.cols * core, device=x.device,
                       dtype=x.dtype)
    values = []
    images = x.shape[0]
    for group in batches(grid, max(1, batch // images)):
        if x.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()
        tiles = _cut(padded, grid, group).requires_grad_(True)  # place by place, each place's N images
        value = value_fn(tiles)
        (tile_grad,) = torch.autograd.grad(value.sum(), tiles)
        for i, (y, x0) in enumerate(group):
            grad[:, :, y : y + core, x0 : x0 + core] = tile_grad[i * images : (i + 1) * images, :, m : m + core,
                                                                 m : m + core]
        values.append(value.detach().clone())  # a CUDA graph overwrites its outputs on the next call
    return grad[..., : grid.height, : grid.width], torch.cat(values).mean()


def tiled_values(x: torch.Tensor, value_fn: Callable[[torch.Tensor], torch.Tensor], grid: TileGrid,
                 batch: int) -> torch.Tensor:
    """Each image's mean objective value over its tiles, ``x`` [N, C, H, W]
    -> [N], forward only; untiled, the images go through in one pass."""
    with torch.no_grad():
        if grid.single:
            return value_fn(x).reshape(x.shape[0], -1).mean(dim=1)
        means = []
        for image in x:
            padded = _pad(image[None], grid)
            means.append(torch.cat([value_fn(_cut(padded, grid, group)) for group in batches(grid, batch)]).mean())
        return torch.stack(means)
