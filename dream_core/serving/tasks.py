"""What a connection hands the worker (:class:`FrameTask`) and what the
worker hands back on the task's event queue: :class:`ProgressEvent`s, then
one :class:`ResultEvent` or :class:`ErrorEvent`."""
from __future__ import annotations

import dataclasses
import queue
import threading
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch

from ..config import DreamSettings, Progress
from ..frame import carried_state
from ..frame.carried_state import CarriedState
from ..frame.temporal import Previous
from ..io import Picture


@dataclass(frozen=True)
class ProgressEvent:
    progress: Progress


class StateSnapshot:
    """A sequence's carried state as one frame left it, on its way to the
    host. The device thread only starts the copies (on CUDA into pinned
    memory, without waiting) and goes on to the next frame; the relay thread
    waits for them and encodes. A frame never writes into the tensors the
    one before left (each leaves new ones), so the snapshot stays exact."""

    def __init__(self, previous: Previous, last_frame: Optional[int]) -> None:
        self.last_frame = last_frame
        self.previous, self.landed = _to_host(previous)

    def encode(self) -> bytes:
        """The state's bytes (:func:`~dream_core.frame.carried_state.encode`); off the device thread."""
        if self.landed is not None:
            self.landed.synchronize()
        return carried_state.encode(self.previous, self.last_frame)


def _to_host(previous: Previous) -> tuple[Previous, Optional["torch.cuda.Event"]]:
    """``previous`` with its tensors on the host or on their way there, and
    the event that says they landed: CUDA copies into pinned memory without
    waiting; another GPU's (MPS) are copied here, as the relay thread must
    not drive that device; a CPU's stay as they are."""
    copies, waiting = {}, False
    for name in carried_state.CHANNELS:
        tensor = getattr(previous, name)
        if tensor is None or tensor.device.type == "cpu":
            continue
        if tensor.is_cuda:
            copies[name] = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            copies[name].copy_(tensor, non_blocking=True)
            waiting = True
        else:
            copies[name] = tensor.cpu()
    if not copies:
        return previous, None
    landed = None
    if waiting:
        landed = torch.cuda.Event()
        landed.record()
    return dataclasses.replace(previous, **copies), landed


@dataclass(frozen=True)
class ResultEvent:
    picture: Picture
    state: Optional[StateSnapshot] = None  # the sequence's carried state after this frame, when the request asked


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
