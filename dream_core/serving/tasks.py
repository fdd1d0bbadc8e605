"""What a connection hands the worker (:class:`FrameTask`) and what the
worker hands back on the task's event queue: :class:`ProgressEvent`s, then
one :class:`ResultEvent` or :class:`ErrorEvent`."""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from ..config import DreamSettings, Progress
from ..frame.carried_state import CarriedState
from ..io import Picture


@dataclass(frozen=True)
class ProgressEvent:
    progress: Progress


@dataclass(frozen=True)
class ResultEvent:
    picture: Picture
    state: Optional[bytes] = None  # the sequence's carried state after this frame, when the request asked


@dataclass(frozen=True)
class ErrorEvent:
    code: str  # one of dream_core.wire.protocol.ERRORS
    message: str


FrameEvent = Union[ProgressEvent, ResultEvent, ErrorEvent]


@dataclass(frozen=True)
class PrepareTask:
    """Frames of this size and these settings are coming: load the model and
    build the compiled engines for them now."""

    settings: DreamSettings
    width: int
    height: int


@dataclass(eq=False)  # a task is itself: compared by identity (its fields hold arrays)
class FrameTask:
    """One decoded frame to dream, and the channel its events go back on."""

    settings: DreamSettings
    picture: Picture
    job: Optional[str] = None
    owner: int = 0  # the connection that sent it: jobs are private to their connection
    frame: Optional[int] = None
    mask: Optional[np.ndarray] = None
    guide: Optional[np.ndarray] = None
    reply_format: str = "png"  # the result's format unless the request names one
    resume: Optional[tuple[Picture, Picture]] = None  # the previous frame's render and dream, from the client
    state: Optional[CarriedState] = None  # the exact carried state to resume from, from the client
    send_state: bool = False  # the result carries the sequence's state after this frame
    blend: Optional[tuple[Picture, float]] = None  # a seam: the result is the dream cross-faded into this picture
    render: Optional[Picture] = None  # the scene-linear render, when ``picture`` is it as displayed (an EXR reply)
    events: "queue.Queue[FrameEvent]" = field(default_factory=queue.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)
