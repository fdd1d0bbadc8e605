"""Typed errors for bad input. Each carries the protocol's error ``code``
(``dream_core.wire.protocol.ERRORS``), so the server reports it as that code
and nothing anywhere matches on an error's text. They are ValueErrors: the
CLI prints them as one line, and callers that catch ValueError keep working.
"""
from __future__ import annotations


class DreamError(ValueError):
    """A dream cannot be made from this input; the message says why."""

    code = "bad_params"

    def __init_subclass__(cls, code: str = "bad_params", **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = code


class BadSetting(DreamError, code="bad_params"):
    """A setting is missing, unknown or out of range."""


class UnknownModel(DreamError, code="unknown_model"):
    """No model of that name is registered."""


class UnknownLayer(DreamError, code="unknown_layer"):
    """The model has no layer of that name."""


class ImageTooSmall(DreamError, code="too_small"):
    """Too small for the networks' mid layers (``engine.octaves.MIN_SIDE``)."""


class NonFiniteImage(DreamError, code="nonfinite"):
    """NaN or infinite pixels."""


class ShapeMismatch(DreamError, code="shape_mismatch"):
    """Sizes of an image, its mask, passes or a previous frame disagree."""


class BadImage(DreamError, code="bad_image"):
    """A file or payload that does not decode as the image it claims to be."""


class ImageTooLarge(DreamError, code="oversize"):
    """More pixels than this process decodes (``io.images.set_max_pixels``)."""


class JobLost(DreamError, code="job_lost"):
    """A frame would carry the motion of a job the server has let go."""


class WeightsUnavailable(DreamError, code="weights_unavailable"):
    """A model's default weights are neither cached nor downloadable here."""
