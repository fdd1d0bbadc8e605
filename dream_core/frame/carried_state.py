"""A sequence's carried state as bytes, exactly: what a frame leaves for
the next (:class:`~.temporal.Previous`) and the frame's number.

A run that is killed, a server that is restarted, a Ray actor that is
lost: each carries on from this state, so the resumed shot is the shot an
uninterrupted run makes (the dream is deterministic given its render, its
settings and this state). Rebuilding the state from the written 8-bit frame
instead is another shot: detail, anchors and the strength governor start
over, and the pattern visibly jumps.

The format is ours and never unpickled: ``MAGIC``, a little-endian u32
header length, a JSON header naming each array (name, shape, dtype) and the
scalars, then the arrays' bytes in that order. :func:`decode` checks
everything a client could get wrong or forge (sizes, shapes that must agree,
non-finite values) before any array reaches a device.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..errors import DreamError
from .temporal import Previous

MAGIC = b"DREAMST1"
MAX_HEADER = 1 << 16
# Previous's tensors: name -> channels; each is [1, C, H, W] at the frame's size, or twice it (SCALE2)
CHANNELS = {"source": 3, "dream": 3, "vectors": 4, "anchor": 4, "reference": 1, "fine_detail": 3, "deformation": 4}
SCALE2 = ("fine_detail",)
REQUIRED = ("source", "dream")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class BadState(DreamError, code="bad_state"):
    """Bytes that are not a carried state of this frame size."""


@dataclass
class CarriedState:
    """A decoded state, on the host: arrays as float32 NumPy with the dtype
    each tensor had, so it comes back bit for bit."""

    arrays: dict[str, tuple[np.ndarray, str]]
    strength_limit: Optional[float]
    gain: float
    last_frame: Optional[int]
    lift: float

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames it belongs to."""
        return tuple(self.arrays["source"][0].shape[-2:])

    def previous(self, device: torch.device) -> Previous:
        tensors = {name: torch.from_numpy(array).to(device=device, dtype=DTYPES[dtype])
                   for name, (array, dtype) in self.arrays.items()}
        return Previous(strength_limit=self.strength_limit, gain=self.gain, lift=self.lift, **tensors)


def encode(previous: Previous, last_frame: Optional[int]) -> bytes:
    """``previous`` (and the number of the frame that left it) as bytes."""
    arrays, blobs = [], []
    for name in CHANNELS:
        tensor = getattr(previous, name)
        if tensor is None:
            continue
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in DTYPES:
            raise BadState(f"cannot keep a {dtype} {name}")
        data = np.ascontiguousarray(tensor.detach().float().cpu().numpy(), dtype="<f4")
        arrays.append({"name": name, "shape": list(data.shape), "dtype": dtype})
        blobs.append(data.tobytes())
    header = json.dumps({"arrays": arrays, "strength_limit": previous.strength_limit, "gain": previous.gain,
                         "lift": previous.lift, "last_frame": last_frame}).encode()
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *blobs])


def decode(data: bytes, size: Optional[tuple[int, int]] = None) -> CarriedState:
    """The state in ``data``; :class:`BadState` says what is wrong with it.
    ``size`` (height, width): the frames it must belong to."""
    if len(data) < len(MAGIC) + 4 or not data.startswith(MAGIC):
        raise BadState("the carried state is not in our format (or is from another version)")
    (length,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if length > MAX_HEADER or start + length > len(data):
        raise BadState("the carried state's header is cut short or too long")
    try:
        header = json.loads(data[start:start + length])
    except (UnicodeDecodeError, ValueError):
        raise BadState("the carried state's header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise BadState("the carried state's header is not of the expected form")
    arrays = _arrays(header["arrays"], memoryview(data)[start + length:])
    state = CarriedState(arrays, _number(header.get("strength_limit"), "strength_limit", optional=True),
                         _number(header.get("gain"), "gain"), _frame(header.get("last_frame")),
                         _number(header.get("lift", 0.0), "lift"))  # a state from before the strength floor: none
    if size is not None and state.size != tuple(size):
        raise BadState(f"the carried state is of {state.size[1]}x{state.size[0]} frames, this frame is "
                       f"{size[1]}x{size[0]}")
    return state


def _arrays(entries: list, body: memoryview) -> dict[str, tuple[np.ndarray, str]]:
    arrays, offset = {}, 0
    for entry in entries:
        name, shape, dtype = _entry(entry)
        if name in arrays:
            raise BadState(f"the carried state holds {name} twice")
        count = int(np.prod(shape))
        if offset + 4 * count > len(body):
            raise BadState("the carried state is cut short")
        array = np.frombuffer(body, dtype="<f4", count=count, offset=offset).reshape(shape).astype(np.float32)
        if not np.isfinite(array).all():
            raise BadState(f"the carried state's {name} holds NaN or infinite values")
        arrays[name] = (array, dtype)
        offset += 4 * count
    if offset != len(body):
        raise BadState("the carried state has bytes after its arrays")
    missing = [name for name in REQUIRED if name not in arrays]
    if missing:
        raise BadState(f"the carried state lacks {', '.join(missing)}")
    height, width = arrays["source"][0].shape[-2:]
    for name, (array, _) in arrays.items():
        scale = 2 if name in SCALE2 else 1
        if array.shape[-2:] != (scale * height, scale * width):
            raise BadState(f"the carried state's {name} is {array.shape[-1]}x{array.shape[-2]}, its frames "
                           f"{width}x{height}")
    return arrays


def _entry(entry) -> tuple[str, tuple[int, ...], str]:
    if not isinstance(entry, dict):
        raise BadState("the carried state's header is not of the expected form")
    name, shape, dtype = entry.get("name"), entry.get("shape"), entry.get("dtype")
    if name not in CHANNELS or dtype not in DTYPES:
        raise BadState(f"the carried state holds an unknown array {name!r} ({dtype!r})")
    if (not isinstance(shape, list) or len(shape) != 4 or not all(type(n) is int and n > 0 for n in shape)
            or shape[:2] != [1, CHANNELS[name]]):
        raise BadState(f"the carried state's {name} has the shape {shape!r}")
    return name, tuple(shape), dtype


def _number(value, name: str, optional: bool = False) -> Optional[float]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise BadState(f"the carried state's {name} is {value!r}")
    return float(value)


def _frame(value) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadState(f"the carried state's frame is {value!r}")
    return value
