"""A batch backend that dreams on a dream server (``dream --server``)."""
from __future__ import annotations

import collections
import os
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
from ..wire.protocol import ProtocolError, default_token_file, failure_text, read_token, token_refused
from .run import Dreamed, Work


class RemoteBackend:
    """Frames of one run form one server job, numbered in order, so the
    server carries each frame into the next for temporal coherence."""

    def __init__(self, client: DreamClient, settings: DreamSettings) -> None:
        self.client = client
        self.settings = settings
        self.params = settings.to_params()
        self.extras = {}
        for name, path in (("mask", settings.mask if settings.mask not in (None, "alpha") else None),
                           ("guide", settings.guide)):
            if path:
                self.extras[name] = (encode_image(read_image(path), "png"), "png")

    @classmethod
    def connect(cls, address: str, token_file: Optional[str], settings: DreamSettings) -> "RemoteBackend":
        if not token_file:  # a server started by this user without --token-file keeps it there
            token_file = default_token_file()
            if not os.path.isfile(token_file):
                raise ValueError(f"--server needs --token-file with the server's token (not found where serve "
                                 f"keeps it by default, {token_file})")
        try:
            client = DreamClient(address, read_token(token_file))
            client.hello()
        except AuthenticationError:
            raise ValueError(token_refused(address, token_file)) from None
        except (OSError, EOFError) as err:
            raise ValueError(f"cannot reach a dream server at {address}: {failure_text(err)}") from None
        return cls(client, settings)

    def dream_frames(self, works: Iterable[Work], progress: Callable[[Progress], None],
                     restore: Optional[bytes] = None) -> Iterator[Dreamed]:
        """Dreams frames in order as one job with two in flight: the next is
        read, encoded and sent while the server dreams the current one. The
        job starts from the carried state ``restore`` when given."""
        sent: "collections.deque[Picture]" = collections.deque()
        job = f"cli-{uuid.uuid4().hex}"  # a segment is a sequence of its own

        def requests():
            for index, work in enumerate(works):
                sent.append(work.picture)
                request = self._request(work)
                if restore is not None and index == 0:
                    request.extras["previous_state"] = (restore, {"format": "dream-state"})
                yield request

        def relay(event: dict) -> None:
            if event.get("event") == "progress":
                progress(Progress(event["octave"], event["octaves"], event["iteration"], event["iterations"]))

        try:
            for result in self.client.dream_many(requests(), self.params, job=job, in_flight=2,
                                                 progress=relay, **self.extras):
                source = sent.popleft()
                if result.header.get("state_omitted"):
                    raise ValueError(f"dream server: {result.header['state_omitted']}")
                yield source.with_pixels(decode_image(result.data, result.meta["format"]).pixels), result.state
        except ProtocolError as err:
            raise ValueError(f"dream server: {err}") from None
        except (OSError, EOFError) as err:
            raise ValueError(f"lost the dream server at {self.client.address} ({failure_text(err)}); "
                             "finished frames are kept, run again to resume") from None

    def _request(self, work: Work) -> FrameRequest:
        picture = work.picture
        needed = None if self.settings.objects is None else cryptomatte_only(picture.passes)
        data, fmt = _encoded(replace(picture, passes=needed))
        extras = _vectors_extra(picture, "vectors")
        if work.blend is not None:
            other, fmt_other = _encoded(replace(work.blend[0], passes=None))
            extras["blend_with"] = (other, {"format": fmt_other})
        return FrameRequest(data, fmt, frame=work.frame, extras=extras,
                            output={"state": True} if work.keep_state else None,
                            blend_share=work.blend[1] if work.blend else None)


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
