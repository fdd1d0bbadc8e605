"""Writing scene settings from Blender's render thread.

With a window open, Blender calls render handlers from its render thread.
While the main thread runs a Python draw callback (any panel, header or
menu, Blender's own included), Blender refuses Python writes to ID data,
and it keeps that refusal in one process-wide flag: a render handler that
writes the scene at that moment gets ``AttributeError: Writing to ID
classes in this context is not allowed``. A draw is over within
milliseconds, so a write from another thread is tried again until it
goes through. On the main thread the refusal is real and is raised."""
from __future__ import annotations

import functools
import threading
import time

from .user_errors import UserError

REFUSED = "Writing to ID classes in this context is not allowed"
RETRY_FOR = 30.0  # s: a draw that holds the flag longer than this is not a draw
PAUSE = 0.002  # s between tries


def refused_while_rendering(err: AttributeError) -> bool:
    """Blender's refusal to let scene data change while it draws or renders."""
    return REFUSED in str(err)


def _refused_by_a_draw(err: AttributeError) -> bool:
    return refused_while_rendering(err) and threading.current_thread() is not threading.main_thread()


def writes_scene(write):
    """Decorates a function that sets scene settings to given values (so a
    run refused part way through is finished by the next) to be tried
    again while a draw on the main thread holds Blender's refusal."""
    @functools.wraps(write)
    def tried(*args, **kwargs):
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                return write(*args, **kwargs)
            except AttributeError as err:
                if not _refused_by_a_draw(err):
                    raise
                if time.monotonic() > deadline:
                    raise UserError(f"Blender refused the render thread's change to the scene for {RETRY_FOR:.0f} s "
                                     f"(the window kept drawing): {err}") from None
            time.sleep(PAUSE)

    return tried
