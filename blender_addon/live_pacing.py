"""Live Dream's decisions, without bpy: when the main thread captures the
view (:class:`Pacer`), the one capture waiting for the worker
(:class:`LatestSlot`: a newer capture replaces an older one, never queued
behind it), the figures the window manager shows (:class:`LiveStats`), and
the preview's size for a view (:func:`preview_size`).

The main thread only captures, hands off and draws; these decide so that
it does as little as it can: a capture only when the worker can send it at
once (so it is never old when it leaves) and only when there is something
to gain (the view or the scene changed, or the dream there still deepens).
"""
from __future__ import annotations

import collections
import threading
from typing import Generic, Optional, TypeVar

T = TypeVar("T")

MIN_SIDE = 32  # the server dreams nothing smaller (dream_core.engine.octaves.MIN_SIDE)
STATS_WINDOW = 3.0  # s: fps and latency are over the last this many seconds


def preview_size(region_width: int, region_height: int, width: int) -> Optional[tuple[int, int]]:
    """The preview's (width, height) for a view of this size: ``width``
    wide (never wider than the view), the view's aspect; None when a side
    would be under :data:`MIN_SIDE` (a view too small to dream)."""
    if region_width <= 0 or region_height <= 0:
        return None
    w = min(width, region_width)
    h = round(region_height * w / region_width)
    if min(w, h) < MIN_SIDE:
        return None
    return w, h


class LatestSlot(Generic[T]):
    """One value handed from the main thread to the worker: a newer one
    replaces the one still waiting (latest wins). ``take`` waits for one."""

    def __init__(self) -> None:
        self._value: Optional[T] = None
        self._closed = False
        self._ready = threading.Condition()

    def put(self, value: T) -> bool:
        """Leaves ``value`` for the worker; True when it replaced one not taken yet."""
        with self._ready:
            replaced = self._value is not None
            self._value = value
            self._ready.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[T]:
        """The waiting value (and the slot empty again), or None after ``timeout`` s or once closed."""
        with self._ready:
            self._ready.wait_for(lambda: self._value is not None or self._closed, timeout)
            value, self._value = self._value, None
            return value

    @property
    def empty(self) -> bool:
        with self._ready:
            return self._value is None

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class Pacer:
    """When to capture the view. ``key`` is everything the view's image
    depends on that the main thread can see cheaply (the view and
    projection matrices, the region's size, the shading, the scene's update
    count, the settings); ``ready``: the worker would send a capture at
    once; ``deepening``: the last dream said it can go deeper. After a
    change, one more capture once the view has been still for ``settle``
    seconds: Material Preview and Rendered refine their image for a moment
    after each change."""

    def __init__(self, settle: float = 0.5) -> None:
        self.settle = settle
        self.sent_key: object = None
        self.changed_at: Optional[float] = None  # when the key last changed; None once settled

    def due(self, now: float, key: object, ready: bool, deepening: bool) -> bool:
        if not ready:
            return False
        if key != self.sent_key or deepening:
            return True
        return self.changed_at is not None and now - self.changed_at >= self.settle

    def captured(self, now: float, key: object) -> None:
        """A capture of ``key`` was handed to the worker."""
        if key != self.sent_key:
            self.sent_key, self.changed_at = key, now
        elif self.changed_at is not None and now - self.changed_at >= self.settle:
            self.changed_at = None  # the settled capture is the last until the next change


class LiveStats:
    """Dreamed images drawn: how many, how many a second and how old (capture
    to drawn) over the last :data:`STATS_WINDOW` seconds."""

    def __init__(self, started: float, window: float = STATS_WINDOW) -> None:
        self.started = started
        self.window = window
        self.updates = 0
        self._recent: "collections.deque[tuple[float, float]]" = collections.deque()  # (drawn at, latency s)

    def drawn(self, now: float, captured_at: float) -> None:
        self.updates += 1
        self._recent.append((now, now - captured_at))
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0][0] <= now - self.window:
            self._recent.popleft()

    def fps(self, now: float) -> float:
        """Images drawn a second, over the window (or the time since the start, when shorter)."""
        self._forget(now)
        span = min(self.window, now - self.started)
        return len(self._recent) / span if span > 0 else 0.0

    def latency_ms(self, now: float) -> float:
        """Mean time from capture to drawn over the window; 0 when nothing was drawn in it."""
        self._forget(now)
        if not self._recent:
            return 0.0
        return 1000.0 * sum(latency for _, latency in self._recent) / len(self._recent)
