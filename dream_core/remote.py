"""A batch backend that dreams on a dream server (``dream --server``)."""
from __future__ import annotations

import uuid
from multiprocessing import AuthenticationError
from typing import Callable, Optional

import numpy as np

from .client import DreamClient
from .engine import Progress
from .io import Picture, decode_image, encode_image, read_image
from .protocol import ProtocolError, read_token
from .settings import DreamSettings


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

    def dream(self, picture: Picture, progress: Callable[[Progress], None]) -> Picture:
        fmt = "exr" if picture.linear else "png"
        data = encode_image(picture if fmt == "exr" else Picture(picture.pixels, False, "uint16"), fmt)

        def relay(event: dict) -> None:
            if event.get("event") == "progress":
                progress(Progress(event["octave"], event["octaves"], event["iteration"], event["iterations"]))

        vectors = None
        if picture.vectors is not None:  # the plain EXR sent holds no passes: the Vector pass goes raw
            vectors = (np.ascontiguousarray(picture.vectors, dtype="<f4").tobytes(),
                       {"dtype": "float32", "shape": list(picture.vectors.shape)})
        self.frame += 1
        try:
            result = self.client.dream(data, fmt, self.params, job=self.job, frame=self.frame, vectors=vectors,
                                       progress=relay, **self.extras)
        except ProtocolError as err:
            raise ValueError(f"dream server: {err}") from None
        dreamed = decode_image(result.data, result.meta["format"])
        return Picture(dreamed.pixels, picture.linear, picture.dtype)
