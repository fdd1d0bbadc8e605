"""Live Dream: a dream that follows a moving view, deepened a few ascent
steps at a time.

A viewport sends a capture whenever its view or its objects change, or
while its dream is still deepening. Each pixel has a *position* in the
settings' schedule (the engine's: every octave's iterations, coarsest
octave first), and :meth:`LiveDream.update` moves the pixels that are
behind along it, octave by octave, within a budget of ``budget`` ascent
iterations' worth of the full-size octave (a coarse octave's iteration
costs its share of the pixels; an unchanged view's update twice that: a
view held still is not waited on, so it grows faster in fewer updates). The detail (dream minus capture, full size)
takes each octave's change upsampled, as the engine's octaves add theirs.
A still view so grows the full dream of the settings, progressively; past
the schedule's end an unchanged view costs nothing.

When the capture changes, the detail moves with it: optical flow from the
last capture to this one (``temporal.estimate_flow``) warps the detail and
the positions (``temporal.warp``); where the warp cannot be trusted
(revealed background, a changed colour, pixels entering the view:
``temporal.reliability``), a pixel keeps less of its detail and goes back
along the schedule by as much (``carried_share``), so the next updates
dream it afresh from the coarsest octave while the carried pixels wait.
A moving object keeps its pattern instead of restarting.

An update may be stopped between iterations (``should_stop``: a newer
capture of a changed view is waiting): what it finished is kept, and
carried into the next capture.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch

from ..config import DreamSettings, Progress
from ..engine import Dreamer
from ..engine.octaves import octave_shapes, resize
from . import temporal
from .colour import keep_source_colours

MOVED = 1.5 / 255  # a capture that differs from the last by more than this anywhere has changed
STILL_FLOW = 0.05  # px: a flow below this everywhere is no motion (the detail is not resampled)
DEFAULT_BUDGET = 2.0  # full-size ascent iterations' worth of work an update does
STILL_BOOST = 2.0  # an unchanged view's updates do this many times the budget: nobody waits for a view that stays


class _Stopped(Exception):
    """Raised from the engine's callback: a newer capture is waiting."""


@dataclass(frozen=True)
class LiveUpdate:
    """What one update made: the image to show (dream space, [1, 3, H, W],
    the settings' mix applied), how deep the dream is (the pixels' mean
    share of the schedule), whether every pixel is at its end (then an
    unchanged view costs nothing more), the ascent iterations run (at all
    octaves), whether the view had changed, and whether the update was
    stopped early for a newer capture."""

    image: torch.Tensor
    depth: float
    full: bool
    iterations: int
    moved: bool
    stopped: bool = False


def _dream_key(dreamer: Dreamer, settings: DreamSettings, shape: tuple) -> tuple:
    """What the carried detail depends on: the network, the objective, the
    scales and the size. The iterations (how deep), the mix and Keep
    Colours (how it is shown) may change without starting over."""
    config = settings.config
    return (dreamer.info.name, dreamer.serial, settings.layer_for(dreamer.info.layers),
            tuple(settings.channels or ()), config.octaves, config.octave_scale, config.step, config.jitter,
            config.seed, config.tile, config.precision, tuple(shape))


class LiveDream:
    """One live view's dream: the last capture, the detail carried (dream
    minus capture, in dream space, full size) and each pixel's position in
    the schedule (iterations done, counted octave by octave). Tensors on
    the dreamer's device."""

    def __init__(self, budget: float = DEFAULT_BUDGET, tuning: temporal.Tuning = temporal.TUNING) -> None:
        self.budget = max(0.1, float(budget))
        self.tuning = tuning
        self.reset()

    def __repr__(self) -> str:
        shape = None if self.capture is None else tuple(self.capture.shape[-2:])
        return f"LiveDream(budget={self.budget:g}, shape={shape}, runs={self.runs})"

    def reset(self) -> None:
        self.capture: Optional[torch.Tensor] = None
        self.detail: Optional[torch.Tensor] = None
        self.position: Optional[torch.Tensor] = None  # [1, 1, H, W]: iterations of the schedule done
        self.deformation: Optional[torch.Tensor] = None  # [1, 4, H, W]: how far the carried detail is stretched
        self.key: tuple = ()
        self.runs = 0  # engine runs so far (they seed the jitter: each shifts differently)
        self.shown: Optional[torch.Tensor] = None  # the last output, returned again for an unchanged, full view
        self.shown_for: tuple = ()  # the (Keep Colours, mix) it was shown with

    def update(self, dreamer: Dreamer, rgb: torch.Tensor, settings: DreamSettings, *,
               should_stop: Optional[Callable[[], bool]] = None) -> LiveUpdate:
        """Dreams capture ``rgb`` [1, 3, H, W] (sRGB in [0, 1]) deeper by
        the budget, carrying the dream from the last capture."""
        rgb = rgb.to(dreamer.device, torch.float32)
        config = settings.config
        shapes = octave_shapes(rgb.shape[-2], rgb.shape[-1], config.octaves, config.octave_scale)
        key = _dream_key(dreamer, settings, rgb.shape)
        if key != self.key or self.capture is None:
            self.reset()
            self.key = key
            self.detail = torch.zeros_like(rgb)
            self.position = torch.zeros_like(rgb[:, :1])
            self.deformation = temporal.undeformed(rgb)
            moved = True
        else:
            moved = bool((rgb - self.capture).abs().amax() > MOVED)
            if moved:
                self._carry(self.capture, rgb)
        self.capture = rgb
        end = len(shapes) * config.iterations
        self.position.clamp_(max=float(end))  # fewer iterations than before: those pixels are done
        if moved:  # a warp of pixels at the end leaves them a rounding short of it: they are done
            self.position = torch.where(self.position > end - 1e-3, float(end), self.position)
        iterations, stopped = 0, False
        if float(self.position.amin()) < end:
            budget = self.budget * (1.0 if moved else STILL_BOOST)
            iterations, stopped = self._advance(dreamer, rgb, settings, shapes, budget, should_stop)
        elif not moved and self.shown is not None and self.shown_for == (settings.keep_colors, settings.mix):
            return LiveUpdate(self.shown, 1.0, True, 0, False)
        self.shown = self._show(settings)
        depth = float(self.position.mean()) / end if end else 1.0
        return LiveUpdate(self.shown, depth, float(self.position.amin()) >= end, iterations, moved, stopped)

    def _advance(self, dreamer: Dreamer, rgb: torch.Tensor, settings: DreamSettings, shapes: list, budget: float,
                 should_stop: Optional[Callable[[], bool]]) -> tuple[int, bool]:
        """Moves the pixels behind along the schedule, coarsest octave
        first, within the budget; returns the iterations run and whether
        it was stopped."""
        config = settings.config
        objective = dreamer.objective(settings.layer_for(dreamer.info.layers), settings.channels)
        size = tuple(rgb.shape[-2:])
        left, ran = 0.0, 0

        def check(_progress: Progress) -> None:
            if should_stop is not None and should_stop():
                raise _Stopped()

        waiting = [o for o in range(len(shapes)) if self._behind(o, config.iterations).any()]
        for octave, shape in enumerate(shapes):
            if octave in waiting:  # the octaves with pixels behind at the start share the budget; what one
                left += budget / len(waiting)  # leaves goes on to the next (a still view's all goes to one)
            behind = self._behind(octave, config.iterations)
            if not bool(behind.any()) or (left <= 0 and octave not in waiting):
                continue
            cost = shape[0] * shape[1] / (size[0] * size[1])
            end = (octave + 1) * config.iterations
            needed = int(torch.ceil(end - self.position[behind].amin()))
            count = max(1, min(needed, int(left / cost)))
            mask = ((end - self.position) / count).clamp_(max=1.0) * behind
            self.runs += 1
            seed = (config.seed * 1_000_003 + self.runs) % (2**63)
            x = resize((rgb + self.detail).clamp(0.0, 1.0), shape)
            try:
                y = dreamer.run(x, objective, config.replace(octaves=1, iterations=count, seed=seed),
                                step_mask=resize(mask, shape), callback=check)
            except _Stopped:
                return ran, True
            self.detail = self.detail + resize(y - x, size)
            self.position = self.position + count * mask
            ran += count
            left -= count * cost
        return ran, False

    def _behind(self, octave: int, iterations: int) -> torch.Tensor:
        """The pixels whose position is within ``octave``'s iterations [1, 1, H, W]."""
        return (self.position >= octave * iterations) & (self.position < (octave + 1) * iterations)

    def _carry(self, before: torch.Tensor, now: torch.Tensor) -> None:
        """Moves the detail and positions from capture ``before`` to
        ``now`` along the optical flow; untrusted pixels keep less detail
        and go back along the schedule by as much. So does detail the
        motion has stretched past ``tuning.stretch_limit`` since it was
        dreamed (as a sequence's carry renews it, see temporal.stretched):
        an orbit's flow over a plain background can smear the detail while
        the colours still match, and a smear is no full dream."""
        flow = temporal.estimate_flow(before, now, tuning=self.tuning)
        if float(flow.abs().amax()) >= STILL_FLOW:
            carried, inside = temporal.warp(torch.cat([self.detail, self.position, before, self.deformation], dim=1),
                                            flow)
            detail, position, warped = carried[:, :3], carried[:, 3:4], carried[:, 4:7]
            deformation = temporal.deformed(carried[:, 7:], flow, self.tuning)
        else:
            detail, position, warped, inside = self.detail, self.position, before, torch.ones_like(self.position)
            deformation = self.deformation
        confidence = temporal.reliability(warped, now, self.tuning) * inside
        share = temporal.carried_share(confidence, self.tuning) * (1.0 - temporal.stretched(deformation, self.tuning))
        self.detail = detail * share
        self.position = (position * share).clamp_(min=0.0)
        self.deformation = temporal.next_deformation(deformation, share)

    def _show(self, settings: DreamSettings) -> torch.Tensor:
        """The capture with the detail, as the settings show it (Keep Colours, mix)."""
        self.shown_for = (settings.keep_colors, settings.mix)
        dreamed = (self.capture + self.detail).clamp(0.0, 1.0)
        if settings.keep_colors:
            dreamed = keep_source_colours(dreamed, self.capture)
        if settings.mix == 1.0:
            return dreamed
        return (self.capture + settings.mix * (dreamed - self.capture)).clamp(0.0, 1.0)
