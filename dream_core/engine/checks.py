"""Shape and value checks with typed errors, in one place (in the spirit of
kornia's ``KORNIA_CHECK_SHAPE``): a wrong input fails at the door with a
message that names what was expected, not deep inside a convolution."""
from __future__ import annotations

import torch

from ..errors import NonFiniteImage, ShapeMismatch


def check_shape(x: torch.Tensor, shape: list[str], what: str = "image") -> None:
    """``shape`` lists each dimension as a number it must equal, a name
    (any size) or ``"1|3"`` for a choice: ``check_shape(x, ["1", "3", "H", "W"])``."""
    if x.dim() != len(shape) or not all(_fits(size, spec) for size, spec in zip(x.shape, shape)):
        raise ShapeMismatch(f"expected {what} of shape [{', '.join(shape)}], got {list(x.shape)}")


def _fits(size: int, spec: str) -> bool:
    choices = spec.split("|")
    if all(c.isdigit() for c in choices):
        return str(size) in choices
    return True


def check_finite(x: torch.Tensor, what: str = "image") -> None:
    if not torch.isfinite(x).all():
        raise NonFiniteImage(f"{what} holds NaN or infinite values")
