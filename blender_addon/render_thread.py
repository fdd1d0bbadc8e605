"""Writing scene settings from Blender's render thread.

With a window open, Blender calls render handlers from its render thread.
While the main thread runs a Python draw callback (any panel, header or
menu, Blender's own included), Blender refuses Python writes to ID data,
and it keeps that refusal in one process-wide flag: a render handler that
writes the scene at that moment gets ``AttributeError: Writing to ID
classes in this context is not allowed``. A draw is over within
milliseconds, so a write from another thread is tried again until it
goes through.

The flag can also stay on after every draw has ended (Blender 3.4: each
Python call that switches it restores the value it found, and two threads
that interleave such calls can restore a stale "refused"; Cycles' own
Python calls in the render thread do: a plain Render Animation with Python
headers drawing left it on after 1 of 4 renders on a loaded machine, no
add-on enabled): then every Python write is refused, on every thread, and
every ``bpy.ops`` call from a script, until something frees it
(:mod:`.write_refusal`). The add-on's timer on the main thread looks for
that and frees it, so a render thread's write goes through at one of its
next tries; a refusal on the main thread, where no draw runs while our
code does, is freed at once and the write tried again."""
from __future__ import annotations

import functools
import threading
import time
from typing import Callable

from .user_errors import UserError

REFUSED = "Writing to ID classes in this context is not allowed"
RETRY_FOR = 30.0  # s: a draw that holds the flag longer than this is not a draw
PAUSE = 0.002  # s between tries


def no_freeing() -> None:
    """Without a window (or before registration) nothing sticks: no draw runs beside our code."""


free_refusal: Callable[[], None] = no_freeing  # frees a stuck flag on the main thread (write_refusal sets it)


def refused_while_rendering(err: AttributeError) -> bool:
    """Blender's refusal to let scene data change while it draws or renders."""
    return REFUSED in str(err)


def writes_scene(write):
    """Decorates a function that sets scene settings to given values (so a
    run refused part way through is finished by the next) to be tried
    again while Blender refuses it (see the module's docstring)."""
    @functools.wraps(write)
    def tried(*args, **kwargs):
        deadline = time.monotonic() + RETRY_FOR
        on_main_thread = threading.current_thread() is threading.main_thread()
        freed = False
        while True:
            try:
                return write(*args, **kwargs)
            except AttributeError as err:
                if not refused_while_rendering(err):
                    raise
                if on_main_thread:
                    if freed:
                        raise
                    free_refusal()
                    freed = True
                    continue
                if time.monotonic() > deadline:
                    raise UserError(f"Blender kept refusing the render thread's change to the scene for "
                                    f"{RETRY_FOR:.0f} s: {err}") from None
            time.sleep(PAUSE)

    return tried
