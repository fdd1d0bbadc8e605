"""A batch backend that dreams on a dream server (``dream --server``)."""
from __future__ import annotations

import collections
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from multiprocessing import AuthenticationError
from typing import Callable, Optional

import numpy as np

from ..config import DreamSettings, Progress
from ..io import Picture, decode_image, encode_image, read_image
from ..io.cryptomatte import cryptomatte_only
from ..wire.client import DreamClient, FrameRequest
from ..wire.protocol import ProtocolError, read_token


class RemoteBackend:
    """Frames of one run form one server job, numbered in order, so the
    server carries each frame into the next for temporal coherence."""

    def __init__(self, client: DreamClient, settings: DreamSettings) -> None:
        self.client = client
        self.settings = settings
        self.params = settings.to_params()
        self.job = f"cli-{uuid.uuid4().hex}"
        self.frame = 0
        self.extras = {}
        for name, path in (("mask", settings.mask if settings.mask not in (None, "alpha") else None),
                           ("guide", settings.guide)):
            if path:
                self.extras[name] = (encode_image(read_image(path), "png"), "png")

    @classmethod
    def connect(cls, address: str, token_file: Optional[str], settings: DreamSettings) -> "RemoteBackend":
        if not token_file:
            raise ValueError("--server needs --token-file with the server's token")
        try:
            client = DreamClient(address, read_token(token_file))
            client.hello()
        except AuthenticationError:
            raise ValueError(f"the dream server at {address} refused the token in {token_file}") from None
        except (OSError, EOFError) as err:
            raise ValueError(f"cannot reach a dream server at {address}: {err}") from None
        return cls(client, settings)

    def dream_frames(self, pictures: Iterable[Picture], progress: Callable[[Progress], None],
                     resume: Optional[tuple[Picture, Picture]] = None) -> Iterator[Picture]:
        """Dreams pictures in order with two frames in flight: the next is
        read, encoded and sent while the server dreams the current one.
        ``resume`` (the frame before's render and dream) goes with the first."""
        sent: "collections.deque[Picture]" = collections.deque()

        def requests():
            for picture in pictures:
                sent.append(picture)
                self.frame += 1
                request = self._request(picture)
                if resume is not None and self.frame == 1 and self.settings.temporal != "none":
                    request.extras.update(self._resume_extras(*resume))
                yield request

        def relay(event: dict) -> None:
            if event.get("event") == "progress":
                progress(Progress(event["octave"], event["octaves"], event["iteration"], event["iterations"]))

        try:
            for result in self.client.dream_many(requests(), self.params, job=self.job, in_flight=2,
                                                 progress=relay, **self.extras):
                source = sent.popleft()
                yield source.with_pixels(decode_image(result.data, result.meta["format"]).pixels)
        except ProtocolError as err:
            raise ValueError(f"dream server: {err}") from None
        except (OSError, EOFError) as err:
            raise ValueError(f"lost the dream server at {self.client.address} ({type(err).__name__}: {err}); "
                             "finished frames are kept, run again to resume") from None

    def _request(self, picture: Picture) -> FrameRequest:
        needed = None if self.settings.objects is None else cryptomatte_only(picture.passes)
        data, fmt = _encoded(replace(picture, passes=needed))
        return FrameRequest(data, fmt, frame=self.frame, extras=_vectors_extra(picture, "vectors"))

    @staticmethod
    def _resume_extras(render: Picture, dreamed: Picture) -> dict:
        extras = _vectors_extra(render, "previous_vectors")
        for name, picture in (("previous_render", render), ("previous_dream", dreamed)):
            data, fmt = _encoded(replace(picture, passes=None))
            extras[name] = (data, {"format": fmt})
        return extras


def _encoded(picture: Picture) -> tuple[bytes, str]:
    """Lossless on the wire: EXR for linear pictures, 16-bit PNG otherwise.
    Passes stay here (they are written back from the source) unless
    ``picture.passes`` was cut down to what the server needs."""
    if picture.linear:
        return encode_image(picture, "exr"), "exr"
    return encode_image(Picture(picture.pixels, False, "uint16"), "png"), "png"


def _vectors_extra(picture: Picture, name: str) -> dict:
    """The plain EXR sent holds no passes: a Vector pass travels raw beside it."""
    if picture.vectors is None:
        return {}
    data = np.ascontiguousarray(picture.vectors, dtype="<f4").tobytes()
    return {name: (data, {"format": "raw", "dtype": "float32", "shape": list(picture.vectors.shape)})}
