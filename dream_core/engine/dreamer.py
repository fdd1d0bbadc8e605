"""The render loop: gradient ascent on the image, octave by octave.

:class:`Dreamer` owns a model on a device (the server keeps one warm);
:meth:`Dreamer.run` is pure: tensors in, tensors out, progress through a
callback that may raise to cancel.
"""
from __future__ import annotations

import functools
import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, Optional, Union

import numpy as np
import torch

from .. import models
from ..config import DreamConfig, Progress, ProgressCallback
from ..errors import BadSetting
from .checks import check_finite, check_shape
from .compiling import ShapeBuilder, SwitchingValue, shape_key
from .device import image_tensor, resolve_device, uses_cuda_graphs
from .objectives import Guide, Objective, objective_of, parse_objective
from .octaves import octave_shapes, resize
from .tiling import TileGrid, tile_grid, tile_shapes, tiled_gradient, tiled_values
from .transforms import Jitter, roll

log = logging.getLogger(__name__)

# a step mask [1 or N, 1, H, W], none, or one per octave by the octaves still to come (0: the finest)
StepMask = Union[torch.Tensor, None, Callable[[int], Optional[torch.Tensor]]]


class OctaveSteps(NamedTuple):
    """One octave's step scale per pixel (None: full steps everywhere) and
    each pixel's share of the mean |gradient| (None: every pixel dreams,
    the plain mean), worked out once an octave rather than every step.
    With a mask [N, 1, H, W], ``plain`` [N, 1, 1, 1] marks the images whose
    every pixel dreams: they take the plain mean, as they would alone."""

    mask: Optional[torch.Tensor] = None
    averaging: Optional[torch.Tensor] = None
    plain: Optional[torch.Tensor] = None

    @classmethod
    def of(cls, mask: Optional[torch.Tensor], channels: int = 3) -> "OctaveSteps":
        """``mask`` [1 or N, 1, H, W]: each image's share is of its own dreaming pixels."""
        if mask is None or bool((mask > 0).all()):
            return cls(mask)
        dreaming = (mask > 0).to(mask.dtype)
        counts = dreaming.sum(dim=(1, 2, 3), keepdim=True)
        plain = dreaming.amin(dim=(1, 2, 3), keepdim=True) > 0
        return cls(mask, dreaming / (counts * channels).clamp(min=1.0), plain if bool(plain.any()) else None)


class ObjectiveValue(torch.nn.Module):
    """The network and an objective as one module: the unit that gets compiled."""

    def __init__(self, net: torch.nn.Module, objective: Objective) -> None:
        super().__init__()
        self.net = net
        self.objective = objective

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.objective(self.net(x.contiguous(memory_format=torch.channels_last), self.objective.layers))


_serials = itertools.count(1)


class Dreamer:
    """A model loaded on a device, ready to dream any number of images."""

    CACHED_OBJECTIVES = 16  # compiled objectives kept, least recently used dropped first
    tile_cap: Optional[int] = None  # the largest tile side that fitted in memory, once one did not

    def __init__(self, model: str = models.DEFAULT_MODEL, *, weights: Optional[str] = "default",
                 device: str = "auto", compile: str = "auto", wait_for_compile: bool = False,
                 on_compiled: Optional[Callable[[], None]] = None) -> None:
        """``compile``: ``"auto"`` compiles the forward and backward with CUDA
        graphs on CUDA (one build per tile shape, kept for later frames)
        and nothing elsewhere; ``"off"``; or a ``torch.compile`` backend name
        (``"eager"`` exercises the same path on a CPU, for tests). A shape
        is built in the background while frames of it dream uncompiled
        (see compiling.py), unless ``wait_for_compile``. ``on_compiled``
        runs after each build (the server saves its compile cache)."""
        self.info = models.model_info(model)
        self.device = resolve_device(device)
        # channels_last: faster convolutions on CUDA and, measured, ~7% on CPU too
        self.net = models.get_model(model, weights=weights).to(self.device, memory_format=torch.channels_last)
        self.compile = compile
        self.wait_for_compile = wait_for_compile
        self.builder = ShapeBuilder(on_compiled)
        self._compiled: "OrderedDict[str, Callable]" = OrderedDict()
        self.serial = next(_serials)  # unlike id(), never reused by a later dreamer: keys caches safely

    def __repr__(self) -> str:
        return f"Dreamer({self.info.name!r}, device={str(self.device)!r})"

    def objective(self, layer: Optional[str] = None, channels: Optional[list[int]] = None,
                  guide: Optional[np.ndarray] = None) -> Objective:
        """Builds an objective: a layer (default: the model's), its channels,
        a ``"a+0.5*b"`` expression, or a guide image H×W×C in [0, 1]."""
        objective = objective_of(layer or self.info.default_layer, self.info.name, self.info.layers)
        if channels:
            if len(objective.layers) != 1:
                raise BadSetting("channels need a single layer")
            objective = parse_objective(f"{next(iter(objective.layers))}:{','.join(map(str, channels))}")
        if guide is not None:
            if len(objective.layers) != 1:
                raise BadSetting("a guide image needs a single layer")
            name = next(iter(objective.layers))
            with torch.no_grad():
                act = self.net(image_tensor(_rgb(guide), self.device), [name])[name][0].float()
            objective = Guide(name, act.reshape(act.shape[0], -1))
        return objective

    def _autocast(self, precision: str):
        # auto: bf16 on NVIDIA GPUs; MPS and ROCm keep the float32 path that works on all of their cards
        use_bf16 = precision == "bf16" or (precision == "auto" and uses_cuda_graphs(self.device))
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16)

    def _value_fn(self, objective: Objective) -> Callable[[torch.Tensor], torch.Tensor]:
        """Tiles -> objective value per tile; compiled when ``self.compile`` asks."""
        key = objective.key
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        value: Callable[[torch.Tensor], torch.Tensor] = ObjectiveValue(self.net, objective)
        if self.compiles:
            import torch._dynamo

            # one graph per octave and tile shape: allow many shapes before falling back
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            if self.compile == "auto":
                compiled = torch.compile(value, mode="reduce-overhead", dynamic=False)
            else:
                compiled = torch.compile(value, backend=self.compile, dynamic=False)
            value = SwitchingValue(value, compiled, self.builder, wait=self.wait_for_compile)
        self._compiled[key] = value
        while len(self._compiled) > self.CACHED_OBJECTIVES:
            self._compiled.popitem(last=False)  # a long-lived server meets many guides
        return value

    @property
    def compiles(self) -> bool:
        return self.compile != "off" and (self.compile != "auto" or uses_cuda_graphs(self.device))

    def prepare(self, objective: Objective, height: int, width: int, config: DreamConfig = DreamConfig()) -> int:
        """Starts building the compiled engine for every tile shape a frame
        of this size will use, before the frame arrives; returns how many
        shapes were asked for (0 where nothing compiles)."""
        if not self.compiles or self.wait_for_compile:
            return 0
        value = self._value_fn(objective)
        keys = set()
        with self._autocast(config.precision):
            for h, w in octave_shapes(height, width, config.octaves, config.octave_scale):
                grid = self.grid(h, w, config)
                for shape in tile_shapes(grid, self._tile_batch(config)):
                    keys.add(shape_key(shape, torch.float32, self.device.type))
        for key in keys:
            self.builder.request(value, key)
        return len(keys)

    def score(self, image: torch.Tensor, objective: Objective, config: DreamConfig = DreamConfig()) -> float:
        """Mean objective of an image [1, 3, H, W], tiled as the dream would
        be; a forward pass only, uncompiled (no graphs captured for it)."""
        return self.scores(image, objective, config)[0]

    def scores(self, images: torch.Tensor, objective: Objective,
               config: DreamConfig = DreamConfig()) -> list[float]:
        """:meth:`score` of each image [N, 3, H, W] of one size: one forward
        pass for all of them where the frame is not tiled."""
        grid = self.grid(images.shape[-2], images.shape[-1], config)
        with self._autocast(config.precision):
            values = tiled_values(images.to(self.device, torch.float32), ObjectiveValue(self.net, objective), grid,
                                  self._tile_batch(config))
        return values.tolist()

    def _tile_batch(self, config: DreamConfig) -> int:
        return config.tile_batch or (4 if self.device.type == "cuda" else 1)

    # Whole frames up to this many pixels run untiled on CUDA: tiles' margins cost
    # 1.3-2x the FLOPs, and an 80 GB GPU holds a 1440p GoogLeNet pass easily.
    CUDA_UNTILED_PIXELS = 2560 * 1440

    def tile_for(self, height: int, width: int, config: DreamConfig) -> int:
        """The tile size for an octave: ``config.tile`` unless automatic (-1):
        untiled on CUDA up to 1440p, else 1024 px tiles; 512 px tiles on CPU;
        never above :attr:`tile_cap` once the device ran out of memory."""
        if config.tile >= 0:
            tile = config.tile
        elif self.device.type == "cuda":
            tile = 0 if height * width <= self.CUDA_UNTILED_PIXELS else 1024
        else:
            tile = 512
        if self.tile_cap is None:
            return tile
        return self.tile_cap if tile == 0 else min(tile, self.tile_cap)

    MIN_TILE = 128  # smaller tiles are mostly margin: below this, out of memory is an error

    def _shrink_tiles(self, height: int, width: int, config: DreamConfig) -> bool:
        """Halves the tile side after the device ran out of memory; False when already at the smallest."""
        current = self.tile_for(height, width, config) or max(height, width)
        if current <= self.MIN_TILE:
            return False
        self.tile_cap = max(self.MIN_TILE, current // 2)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        log.warning("out of memory with %d px tiles on %s; dreaming on with %d px tiles", current, self.device,
                    self.tile_cap)
        return True

    def grid(self, height: int, width: int, config: DreamConfig):
        return tile_grid(height, width, self.tile_for(height, width, config), config.tile_margin)

    def run(self, image: torch.Tensor, objective: Objective, config: DreamConfig = DreamConfig(), *,
            step_mask: StepMask = None, callback: Optional[ProgressCallback] = None) -> torch.Tensor:
        """Dreams ``image`` [N, 3, H, W] (sRGB in [0, 1]) and returns the result
        on the same device. ``step_mask`` [1 or N, 1, H, W] scales the step
        per pixel (0 leaves a pixel untouched); or a function of the octaves
        still to come after this one (0: the finest) giving each octave its
        mask. N images go through the network as one batch (more work per
        kernel: what fills a GPU that one frame leaves idle); each is stepped
        by its own mean |gradient|, so each comes out as dreamed alone, up
        to float rounding. The jitter is the same for all of them, as it is
        for every frame dreamed alone with one seed."""
        check_shape(image, ["N", "3", "H", "W"])
        check_finite(image)
        base = image.to(self.device, torch.float32)
        shapes = octave_shapes(base.shape[-2], base.shape[-1], config.octaves, config.octave_scale)
        jitter = Jitter(config.jitter, config.seed)
        value_fn = self._value_fn(objective)
        detail = torch.zeros_like(resize(base, shapes[0]))
        x = base
        for octave, shape in enumerate(shapes, start=1):
            octave_base = resize(base, shape)
            x = octave_base + resize(detail, shape)
            steps = OctaveSteps.of(self._octave_mask(step_mask, len(shapes) - octave, base, shape))
            grid = self.grid(shape[0], shape[1], config)
            for iteration in range(1, config.iterations + 1):
                x, grid = self._fitting_step(x, value_fn, grid, config, jitter, steps)
                if callback is not None:
                    callback(Progress(octave, len(shapes), iteration, config.iterations))
            detail = x - octave_base
        return x

    def _fitting_step(self, x: torch.Tensor, value_fn, grid: TileGrid, config: DreamConfig, jitter: Jitter,
                      steps: OctaveSteps) -> tuple[torch.Tensor, TileGrid]:
        """One step in tiles that fit the device's memory: out of memory
        halves the tiles (kept for later frames) and tries again. Returns
        the stepped image and the grid that fitted."""
        while True:
            try:
                return self._step(x, value_fn, grid, config, jitter, steps), grid
            except RuntimeError as err:
                if not is_out_of_memory(err) or not self._shrink_tiles(x.shape[-2], x.shape[-1], config):
                    raise
            grid = self.grid(x.shape[-2], x.shape[-1], config)

    def _octave_mask(self, step_mask: StepMask, remaining: int, base: torch.Tensor,
                     shape: tuple[int, int]) -> Optional[torch.Tensor]:
        mask = step_mask(remaining) if callable(step_mask) else step_mask
        if mask is None:
            return None
        check_shape(mask, [f"1|{base.shape[0]}", "1", str(base.shape[-2]), str(base.shape[-1])], "step mask")
        return resize(mask.to(self.device, torch.float32), shape)

    def _step(self, x: torch.Tensor, value_fn, grid: TileGrid, config: DreamConfig, jitter: Jitter,
              steps: OctaveSteps) -> torch.Tensor:
        """One gradient-ascent step at one octave (``grid``: that octave's tiles)."""
        dy, dx = jitter.draw()
        with torch.enable_grad(), self._autocast(config.precision):
            grad, _ = tiled_gradient(roll(x, dy, dx), value_fn, grid, self._tile_batch(config))
        grad = roll(grad.float(), -dy, -dx)
        # normalised like the original notebook: the step is a mean change per pixel that dreams
        update = grad * (config.step / (_mean_abs(grad, steps.averaging, steps.plain) + 1e-8))
        if steps.mask is not None:
            update = update * steps.mask
        return (x + update).clamp_(0.0, 1.0)


def _mean_abs(grad: torch.Tensor, averaging: Optional[torch.Tensor],
              plain: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Each image's mean |gradient| [N, 1, 1, 1] over the pixels whose step
    is not 0 (``averaging``, see OctaveSteps): an object dreamed alone grows
    as strongly as in a frame where everything dreams (measured: 0.7 of it
    when the still pixels counted too). ``plain`` images take the plain mean
    (the same value, rounded as it is for the image alone)."""
    size = grad.abs()
    if averaging is None:
        return size.mean(dim=(1, 2, 3), keepdim=True)
    weighted = (size * averaging).sum(dim=(1, 2, 3), keepdim=True)
    return weighted if plain is None else torch.where(plain, size.mean(dim=(1, 2, 3), keepdim=True), weighted)


@functools.lru_cache(maxsize=4)
def cached_dreamer(model: str, weights: Optional[str], device: str) -> Dreamer:
    """Models are costly to build; repeated calls (the API, a batch backend) reuse them."""
    return Dreamer(model, weights=weights, device=device)


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA raises its own type; MPS and ROCm builds raise a plain RuntimeError that says so."""
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """H×W×C pixels as H×W×3 (grey repeated, alpha dropped): a guide may be any image."""
    return np.repeat(pixels[..., :1], 3, axis=-1) if pixels.shape[-1] < 3 else pixels[..., :3]
