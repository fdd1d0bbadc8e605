"""The one way the add-on's main thread takes in a worker thread's
messages (:mod:`.dreaming`: small classes, one per kind of news). A
:class:`Dispatcher` drains the queue within a time budget and hands each
message to the handler registered for its type, as Flamenco's add-on does
with ``isinstance``; each route (Dream Animation's :class:`~.frame_walk.FrameWalk`,
Dream on Render's :class:`~.chunk_dreaming.ChunkDreaming`) registers its own
reactions. No bpy: Blender's data is touched by the handlers, on the main
thread that drains."""
from __future__ import annotations

import queue
import time
from typing import Any, Callable, Mapping, Optional

Handler = Callable[[Any], Optional[bool]]


class Dispatcher:
    """``handlers`` maps a message type to what the route does with it; a
    handler that returns True hands control back to the caller (Dream
    Animation feeds its next frame after each dream). A message of a type
    with no handler is let go: a route may have no use for it (progress)."""

    def __init__(self, messages: "queue.Queue", handlers: Mapping[type, Handler]) -> None:
        self.messages = messages
        self.handlers = dict(handlers)

    def __repr__(self) -> str:
        return f"Dispatcher({', '.join(kind.__name__ for kind in self.handlers)})"

    def handle(self, message) -> bool:
        """Hands ``message`` to the handler of its type (or of its nearest base class)."""
        for kind in type(message).__mro__:
            handler = self.handlers.get(kind)
            if handler is not None:
                return bool(handler(message))
        return False

    def drain(self, wait: float = 0.0, *, finished: Callable[[], bool],
              before_each: Optional[Callable[[], None]] = None) -> None:
        """Handles messages until the route is ``finished``, a handler hands
        control back, or none comes within ``wait`` s from now (0: only those
        already queued). ``before_each`` runs before each look at the queue
        (a route's own main-thread work, such as sending what waits)."""
        deadline = time.monotonic() + wait
        while not finished():
            if before_each is not None:
                before_each()
                if finished():
                    return
            timeout = max(0.0, deadline - time.monotonic())
            try:
                message = self.messages.get(timeout=timeout) if timeout else self.messages.get_nowait()
            except queue.Empty:
                return
            if self.handle(message):
                return
