"""Dream settings as one JSON-friendly value: the CLI builds them from
arguments, the server from a request's ``params``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from .engine import DreamConfig
from .temporal import MODES as TEMPORAL_MODES


@dataclass
class DreamSettings:
    """Everything that shapes a dream besides the pixels."""

    model: str = "lite0"
    layer: Optional[str] = None
    layer_index: int = -1  # a layer by position from the input when no layer is named; -1: the model's default
    channels: Optional[list[int]] = None
    weights: Optional[str] = "default"
    keep_colors: bool = False
    mask: Optional[str] = None  # "alpha", or (CLI only) a path to a grey image
    guide: Optional[str] = None  # (CLI only) path to a guide image
    temporal: str = "none"  # none, blend, flow, vectors, auto: see dream_core.temporal
    strength: float = 1.0  # output mix between the render (0) and the dream (1)
    config: DreamConfig = field(default_factory=DreamConfig)

    def layer_for(self, layers: tuple[str, ...]) -> Optional[str]:
        """The layer to dream for a model with ``layers``: the named one, or
        the one at ``layer_index`` (the last past the end), or None for the
        model's default. An index lets an animation keyframe the depth."""
        if self.layer or self.layer_index < 0:
            return self.layer
        return layers[min(self.layer_index, len(layers) - 1)]

    def to_params(self) -> dict:
        """The wire form: flat, with the numeric settings beside the others."""
        params = {k: v for k, v in asdict(self).items() if k not in ("config", "guide")}
        if params["mask"] not in (None, "alpha"):
            params["mask"] = None  # a mask file travels as a payload
        params.update(asdict(self.config))
        return params

    @classmethod
    def from_params(cls, params: dict) -> "DreamSettings":
        """Reads and checks a request's params; ValueError names the bad one."""
        if not isinstance(params, dict):
            raise ValueError("params must be an object")
        config_names = set(DreamConfig.field_names())
        own = {"model", "layer", "layer_index", "channels", "weights", "keep_colors", "mask", "temporal", "strength"}
        unknown = sorted(set(params) - config_names - own)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(sorted(own | config_names))}")
        config = DreamConfig(**{k: v for k, v in params.items() if k in config_names})
        kwargs = {k: v for k, v in params.items() if k in own}
        for name in ("model", "layer", "weights"):
            if kwargs.get(name) is not None and not isinstance(kwargs[name], str):
                raise ValueError(f"{name} must be a string")
        index = kwargs.get("layer_index", -1)
        if isinstance(index, bool) or not isinstance(index, int) or not -1 <= index <= 1000:
            raise ValueError("layer_index must be an integer from -1 (the model's default) to 1000")
        channels = kwargs.get("channels")
        if channels is not None and (not isinstance(channels, list)
                                     or not all(isinstance(c, int) and not isinstance(c, bool) for c in channels)):
            raise ValueError("channels must be a list of integers")
        if kwargs.get("mask") not in (None, "alpha"):
            raise ValueError("mask must be 'alpha' or null (send a mask image as a payload)")
        if kwargs.get("temporal", "none") not in TEMPORAL_MODES:
            raise ValueError(f"temporal must be one of {', '.join(TEMPORAL_MODES)}")
        strength = kwargs.get("strength", 1.0)
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 2.0:
            raise ValueError("strength must be a number between 0 and 2")
        if not isinstance(kwargs.get("keep_colors", False), bool):
            raise ValueError("keep_colors must be true or false")
        return cls(**kwargs, config=config)
