"""Frames on the wire: request payloads decoded into a :class:`FrameTask`
(every size, type and value checked, errors as protocol codes) and results
encoded as the client asked."""
from __future__ import annotations

import os
from typing import Callable, Optional

import numpy as np

from ..config import DreamSettings
from ..engine.objectives import objective_of
from ..errors import DreamError
from ..frame import carried_state
from ..frame.colour import as_shown, carried_back_to
from ..io import Picture, decode_image, dither, encode_image
from ..io.images import max_pixels, set_max_pixels
from ..io.transfer import grey
from ..models import model_info
from ..wire import protocol as P
from .tasks import FrameTask, PrepareTask

MAX_SIDE = 16384  # EXR's own limit, a side


def decode_prepare(header: dict, weights_dir: Optional[str] = None) -> PrepareTask:
    """A prepare request: the settings as a dream's would be checked, and a frame size."""
    settings = request_settings(header, weights_dir)
    try:
        info = model_info(settings.model)
        layer = settings.layer_for(info.layers)
        if layer:  # refused as a frame would be, at once rather than in the server's log
            objective_of(layer, info.name, info.layers)
    except DreamError as err:
        raise P.ProtocolError(err.code, str(err)) from None
    width, height = header.get("width"), header.get("height")
    for name, side in (("width", width), ("height", height)):
        if type(side) is not int or not 1 <= side <= MAX_SIDE:
            raise P.ProtocolError("bad_header", f"prepare needs a whole {name} from 1 to {MAX_SIDE}, got {side!r}")
    if width * height > max_pixels():
        raise P.ProtocolError("oversize", f"{width}x{height} is more than the {max_pixels() / 1e6:g} megapixels this "
                              "server takes")
    return PrepareTask(settings, width, height)


def request_settings(header: dict, weights_dir: Optional[str]) -> DreamSettings:
    """A request's ``params`` as settings, checked, its weights those the server offers."""
    try:
        settings = DreamSettings.from_params(header.get("params") or {})
    except DreamError as err:
        raise P.ProtocolError(err.code, str(err)) from None
    settings.weights = served_weights(settings.weights, weights_dir)
    return settings


Stage = Callable[[np.ndarray], np.ndarray]


def decode_task(header: dict, payloads: list[bytes], weights_dir: Optional[str] = None,
                stage: Optional[Stage] = None) -> FrameTask:
    """A dream request's header and payloads as a task for the worker.
    ``weights_dir``: the folder whose ``.pth`` files requests may name.
    ``stage``: puts raw float pixels that go to the device untouched (the
    image, its Vector pass) where the device thread uploads them from (see
    :func:`~dream_core.engine.device.staged_pixels`); such an image may stay
    float16 until the device."""
    named = {}
    for meta, data in zip(header.get("payloads", []), payloads):
        named[meta.get("name")] = (meta, data)
    if "image" not in named:
        raise P.ProtocolError("bad_header", "a dream request needs an 'image' payload")
    settings = request_settings(header, weights_dir)
    check_output(header.get("output"))
    shown = "display" in named  # the image is then worked on here (as_shown): not staged
    picture = decode_picture(*named["image"], "image", None if shown else stage)
    if "vectors" in named:
        vectors = decode_picture(*named["vectors"], "vectors", stage).pixels
        if vectors.shape != (picture.height, picture.width, 4):
            raise P.ProtocolError("shape_mismatch", f"vectors are {list(vectors.shape)}, expected "
                                  f"[{picture.height}, {picture.width}, 4]")
        picture.vectors = vectors
    mask = guide = None
    if "mask" in named:
        mask_pixels = decode_picture(*named["mask"], "mask").pixels
        if mask_pixels.shape[:2] != (picture.height, picture.width):
            raise P.ProtocolError("shape_mismatch", "the mask's size differs from the image's")
        mask = grey(mask_pixels)
    if "guide" in named:
        guide = decode_picture(*named["guide"], "guide").pixels
    render = None
    if shown:  # dream the render as the view transform shows it; its passes stay the render's
        render, picture = picture, _displayed(named["display"], picture)
    state = None
    if "previous_state" in named:
        try:
            state = carried_state.decode(named["previous_state"][1], (picture.height, picture.width))
        except DreamError as err:
            raise P.ProtocolError(err.code, str(err)) from None
    return FrameTask(settings, picture, job=job_id(header), frame=frame_number(header), mask=mask, guide=guide,
                     reply_format=named["image"][0].get("format", "png"), resume=_resume(named, picture),
                     state=state, send_state=bool((header.get("output") or {}).get("state")),
                     blend=_blend(header, named, picture), render=render)


def _displayed(payload: tuple[dict, bytes], render: Picture) -> Picture:
    """The ``display`` payload (the render through the view transform,
    display-encoded) as the picture to dream, with the render's passes."""
    try:
        return as_shown(render, decode_picture(*payload, "display"))
    except DreamError as err:
        raise P.ProtocolError(err.code, f"display: {err}") from None


def _blend(header: dict, named: dict, picture: Picture) -> Optional[tuple[Picture, float]]:
    """A seam's frame (``blend_with``: the chunk after's dream of it, ``blend_share``: its share)."""
    if "blend_with" not in named:
        if "blend_share" in header:
            raise P.ProtocolError("bad_header", "blend_share needs a blend_with payload")
        return None
    share = header.get("blend_share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
        raise P.ProtocolError("bad_header", "blend_share must be a number from 0 to 1")
    other = decode_picture(*named["blend_with"], "blend_with")
    if other.pixels.shape != picture.pixels.shape:
        raise P.ProtocolError("shape_mismatch", f"blend_with is {other.width}x{other.height} with "
                              f"{other.pixels.shape[-1]} channels, the image {picture.width}x{picture.height} with "
                              f"{picture.pixels.shape[-1]}")
    return other, float(share)


def _resume(named: dict, picture: Picture) -> Optional[tuple[Picture, Picture]]:
    """The previous frame's render (``previous_render``, with its Vector pass
    inside or as ``previous_vectors``) and written dream (``previous_dream``):
    a client resuming a sequence sends them in case the server lost the job."""
    if "previous_render" not in named and "previous_dream" not in named:
        return None
    if "previous_render" not in named or "previous_dream" not in named:
        raise P.ProtocolError("bad_header", "previous_render and previous_dream go together")
    render = decode_picture(*named["previous_render"], "previous_render")
    dreamed = decode_picture(*named["previous_dream"], "previous_dream")
    if "previous_vectors" in named:
        render.vectors = decode_picture(*named["previous_vectors"], "previous_vectors").pixels
    for what, other in (("previous_render", render), ("previous_dream", dreamed)):
        if (other.height, other.width) != (picture.height, picture.width):
            raise P.ProtocolError("shape_mismatch", f"{what} is {other.width}x{other.height}, the image "
                                  f"{picture.width}x{picture.height}")
    if render.vectors is not None and render.vectors.shape != (picture.height, picture.width, 4):
        raise P.ProtocolError("shape_mismatch", "previous_vectors must be the Vector pass, H×W×4")
    return render, dreamed


def served_weights(name: Optional[str], weights_dir: Optional[str]) -> Optional[str]:
    """A request's ``weights`` as a path this server may load: ``default``,
    None (random, for timing), or the name of a ``.pth`` file in
    ``weights_dir``. Every refusal reads the same, so a client cannot learn
    which files exist on the server."""
    if name in ("default", None):
        return name
    if weights_dir and os.path.basename(name) == name and name.endswith(".pth"):
        path = os.path.join(weights_dir, name)
        if os.path.isfile(path):
            return path
    offered = "'default', null" + (" or a .pth file name from the server's --weights-dir" if weights_dir else "")
    raise P.ProtocolError("bad_params", f"weights: this server offers {offered}")


def frame_number(header: dict) -> Optional[int]:
    frame = header.get("frame")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int)):
        raise P.ProtocolError("bad_header", "frame must be an integer or null")
    return frame


def job_id(header: dict) -> Optional[str]:
    job = header.get("job")
    if job is not None and (not isinstance(job, str) or not 0 < len(job) <= 200):
        raise P.ProtocolError("bad_header", "job must be a string of 1 to 200 characters")
    return job


def decode_picture(meta: dict, data: bytes, what: str, stage: Optional[Stage] = None) -> Picture:
    """One payload as a picture, checked. Raw float pixels go through
    ``stage`` when given (see :func:`decode_task`), else become float32."""
    fmt = meta.get("format")
    if fmt == "raw":
        h, w, c, dtype = P.check_raw(meta, len(data))
        if h * w > max_pixels():
            raise P.ProtocolError("oversize", f"{what} has {h * w} pixels; at most {max_pixels()}")
        array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(h, w, c)
        if dtype in ("uint8", "uint16"):
            array = array.astype(np.float32)
            array /= 255.0 if dtype == "uint8" else 65535.0
        else:  # checked before any copy, on the values as sent
            _check_finite(array, what)
            array = stage(array) if stage is not None else array.astype(np.float32)
        picture = Picture(array, bool(meta.get("linear", False)), dtype)
    elif fmt in P.IMAGE_FORMATS:
        try:
            picture = decode_image(data, fmt, source=what)
        except DreamError as err:
            raise P.ProtocolError(err.code, str(err)) from None
    else:
        raise P.ProtocolError("bad_header", f"{what} format must be one of {', '.join(P.IMAGE_FORMATS)}")
    if picture.height * picture.width > max_pixels():
        raise P.ProtocolError("oversize", f"{what} is {picture.width}x{picture.height}; too large")
    if picture.height == 0 or picture.width == 0:
        raise P.ProtocolError("too_small", f"{what} is {picture.width}x{picture.height}")
    if fmt != "raw":
        _check_finite(picture.pixels, what)
    return picture


def _check_finite(pixels: np.ndarray, what: str) -> None:
    """float16 by its bits (all exponent bits set: infinite or NaN), some
    twenty times faster than NumPy's float16 ``isfinite``."""
    if pixels.dtype == np.float16:
        finite = pixels.size == 0 or (pixels.view(np.uint16) & 0x7FFF).max() < 0x7C00
    else:
        finite = np.isfinite(pixels).all()
    if not finite:
        raise P.ProtocolError("nonfinite", f"{what} holds NaN or infinite values")


def to_raw(pixels: np.ndarray, dtype: str) -> memoryview:
    """Pixels as the raw payload's bytes: one conversion, no further copy
    (the socket sends straight from the array)."""
    if dtype in ("uint8", "uint16"):
        top = 255 if dtype == "uint8" else 65535
        pixels = np.round(np.clip(pixels, 0, 1) * top)
    wire = np.dtype(dtype).newbyteorder("<")
    converted = pixels.astype(wire) if pixels.dtype != wire else np.ascontiguousarray(pixels)
    return memoryview(np.ascontiguousarray(converted)).cast("B")


def check_output(output) -> None:
    """Refuses a bad ``output`` before the frame is dreamed, not after."""
    if output is None:
        return
    if not isinstance(output, dict):
        raise P.ProtocolError("bad_header", "output must be an object such as {\"format\": \"png\"}")
    fmt = output.get("format")
    if fmt is not None and fmt not in P.IMAGE_FORMATS:
        raise P.ProtocolError("bad_header", f"output format must be one of {', '.join(P.IMAGE_FORMATS)}")
    if output.get("dtype", "float32") not in P.RAW_DTYPES:
        raise P.ProtocolError("bad_header", f"raw dtype must be one of {', '.join(P.RAW_DTYPES)}")
    if not isinstance(output.get("state", False), bool):
        raise P.ProtocolError("bad_header", "output state must be true or false")
    if "dither" in output:
        _check_dither(output["dither"], fmt)


def _check_dither(asked, fmt) -> None:
    if fmt != "png":
        raise P.ProtocolError("bad_header", "output dither needs the png format (a file of 8-bit levels)")
    if not isinstance(asked, dict) or asked.get("pattern") not in dither.PATTERNS:
        raise P.ProtocolError("bad_header", f"output dither must be {{\"intensity\": 0-2, \"pattern\": one of "
                                            f"{', '.join(dither.PATTERNS)}}}")
    intensity = asked.get("intensity")
    if isinstance(intensity, bool) or not isinstance(intensity, (int, float)) or not 0 <= intensity <= 2:
        raise P.ProtocolError("bad_header", "output dither intensity must be a number from 0 to 2")


def encode_result(picture: Picture, output: dict, default_format: str,
                  displayed: Optional[tuple[Picture, Picture]] = None) -> tuple[dict, "bytes | memoryview"]:
    """The dreamed picture as the request's ``output`` asks: raw pixels or an
    image file's bytes. ``displayed``: (the scene-linear render, the image
    dreamed, as displayed) when the dream acted on the displayed image: an
    EXR reply is then the dream carried back to scene light."""
    check_output(output)
    fmt = output.get("format") or default_format
    if displayed is not None and fmt == "exr":
        picture = carried_back_to(*displayed, picture)
    if "dither" in output:  # levels of the 8-bit file Blender writes, with its dither: written as they are
        asked = output["dither"]
        picture = picture.with_pixels(dither.to_8bit_levels(picture.pixels, asked["intensity"], asked["pattern"]))
    if fmt == "raw":
        dtype = output.get("dtype", "float32")
        meta = {"name": "image", "format": "raw", "dtype": dtype, "shape": list(picture.pixels.shape),
                "linear": picture.linear}
        return meta, to_raw(picture.pixels, dtype)
    return {"name": "image", "format": fmt}, encode_image(picture, fmt)


def limit_decoders(megapixels: float, side: int = MAX_SIDE) -> None:
    """Refuse decompression bombs: a small file that declares a huge image
    must fail before it is decoded, not exhaust memory."""
    import OpenEXR

    set_max_pixels(int(megapixels * 1_000_000))
    OpenEXR.setMaxImageSize(side, side)
