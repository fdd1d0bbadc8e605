"""Settings, limits and progress: plain values with no torch, so the CLI's
``--help``, the request decoding and anything facing the add-on load fast.

:class:`DreamConfig` is how hard and at which scales the engine dreams;
:class:`DreamSettings` is everything else that shapes a dream (model, layer,
masks, coherence, the output mix), in one JSON-friendly value that the CLI
builds from arguments and the server from a request's ``params``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from .errors import BadSetting
from .shot.settings import BY_NAME, PRECISIONS, SETTINGS, TEMPORAL_MODES

DEFAULT_MODEL = BY_NAME["model"].default


def _default(name: str):
    return BY_NAME[name].default


def _check_number(name: str, value, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadSetting(f"{name} must be between {low} and {high}, got {value!r}")


@dataclass(frozen=True)
class DreamConfig:
    """How hard and at which scales to dream. Defaults give classic DeepDream."""

    octaves: int = _default("octaves")
    octave_scale: float = _default("octave_scale")
    iterations: int = _default("iterations")
    step: float = _default("step")
    jitter: int = _default("jitter")
    tile: int = _default("tile")  # largest tile side; 0 = whole image; -1 = automatic (see Dreamer.tile_for)
    tile_margin: int = _default("tile_margin")
    tile_batch: int = _default("tile_batch")  # tiles per forward pass; 0 = automatic (4 on CUDA, 1 on CPU)
    seed: int = _default("seed")
    precision: str = _default("precision")  # "fp32", "bf16" or "auto" (bf16 on CUDA)

    LIMITS = {s.name: (s.low, s.high) for s in SETTINGS if s.engine and s.low is not None}
    COUNTS = tuple(s.name for s in SETTINGS if s.engine and type(s.default) is int)  # whole numbers

    def __post_init__(self) -> None:
        for name, (low, high) in self.LIMITS.items():
            _check_number(name, getattr(self, name), low, high)
        for name in self.COUNTS:
            if not isinstance(getattr(self, name), int):
                raise BadSetting(f"{name} must be a whole number, got {getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise BadSetting(f"precision must be {', '.join(PRECISIONS)}, got {self.precision!r}")

    def replace(self, **changes) -> "DreamConfig":
        return DreamConfig(**{**asdict(self), **changes})

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class Progress:
    """One gradient step done: ``octave`` and ``iteration`` count from 1."""

    octave: int
    octaves: int
    iteration: int
    iterations: int

    @property
    def fraction(self) -> float:
        return ((self.octave - 1) * self.iterations + self.iteration) / max(1, self.octaves * self.iterations)


ProgressCallback = Callable[[Progress], None]

# the settings of DreamSettings itself, beside DreamConfig's, on the wire
_OWN = tuple(s.name for s in SETTINGS if not s.engine)
MAX_STRENGTH = 2.0


@dataclass(frozen=True)
class ObjectStrengths:
    """How hard each object dreams, by its name in the frame's Cryptomatte
    object pass: 0 keeps its pixels as rendered, 1 dreams as usual, 2
    doubles the ascent. Edge pixels shared by objects blend by coverage."""

    objects: dict = field(default_factory=dict)  # name -> strength
    others: float = 1.0  # objects not named
    background: float = 1.0  # what no object covers (the world)
    require_all: bool = False  # a named object missing from the frame is an error (the CLI's names are typed)

    def __post_init__(self) -> None:
        if not isinstance(self.objects, dict) or not all(isinstance(n, str) for n in self.objects):
            raise BadSetting("objects must map object names to strengths")
        for name, value in self.objects.items():
            _check_number(f"the strength of {name!r}", value, 0.0, MAX_STRENGTH)
        _check_number("others", self.others, 0.0, MAX_STRENGTH)
        _check_number("background", self.background, 0.0, MAX_STRENGTH)
        if not isinstance(self.require_all, bool):
            raise BadSetting("require_all must be true or false")

    @classmethod
    def from_params(cls, value) -> "ObjectStrengths":
        valid = [f.name for f in fields(cls)]
        if not isinstance(value, dict) or set(value) - set(valid):
            raise BadSetting(f"objects must be an object with the keys {', '.join(valid)}")
        return cls(**value)


@dataclass
class DreamSettings:
    """Everything that shapes a dream besides the pixels."""

    model: str = DEFAULT_MODEL
    layer: Optional[str] = None
    layer_index: int = _default("layer_index")  # a layer by position when none is named; -1: the model's default
    channels: Optional[list[int]] = None
    weights: Optional[str] = _default("weights")
    keep_colors: bool = False
    mask: Optional[str] = None  # "alpha", or (CLI only) a path to a grey image
    objects: Optional[ObjectStrengths] = None  # per-object strengths from the Cryptomatte pass
    guide: Optional[str] = None  # (CLI only) path to a guide image
    temporal: str = _default("temporal")  # one of TEMPORAL_MODES: see dream_core.frame.temporal
    mix: float = _default("mix")  # the output: the render (0) to the dream (1), up to 2 to exaggerate
    config: DreamConfig = field(default_factory=DreamConfig)

    def __post_init__(self) -> None:
        """The settings every front end sets by value are checked however the
        settings are made (the CLI builds them directly, a request through
        :meth:`from_params`), against the one table of ranges."""
        low, high = _range("layer_index")
        index = self.layer_index
        if isinstance(index, bool) or not isinstance(index, int) or not low <= index <= high:
            raise BadSetting(f"layer_index must be an integer from {low} (the model's default) to {high}")
        if self.temporal not in TEMPORAL_MODES:
            raise BadSetting(f"temporal must be one of {', '.join(TEMPORAL_MODES)}")
        _check_number("mix", self.mix, *_range("mix"))
        if not isinstance(self.keep_colors, bool):
            raise BadSetting("keep_colors must be true or false")

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
        """Reads and checks a request's params; BadSetting names the bad one."""
        if not isinstance(params, dict):
            raise BadSetting("params must be an object")
        config_names = set(DreamConfig.field_names())
        unknown = sorted(set(params) - config_names - set(_OWN))
        if unknown:
            raise BadSetting(f"unknown setting(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(sorted(config_names | set(_OWN)))}")
        own = {k: v for k, v in params.items() if k in _OWN}
        _check_own(own)
        if own.get("objects") is not None:
            own["objects"] = ObjectStrengths.from_params(own["objects"])
        try:
            config = DreamConfig(**{k: v for k, v in params.items() if k in config_names})
        except TypeError as err:
            raise BadSetting(str(err)) from None
        return cls(**own, config=config)


def _check_own(own: dict) -> None:
    """What a request's own settings need beyond DreamSettings' checks of its values."""
    for name in ("model", "layer", "weights"):
        if own.get(name) is not None and not isinstance(own[name], str):
            raise BadSetting(f"{name} must be a string")
    channels = own.get("channels")
    if channels is not None and (not isinstance(channels, list)
                                 or not all(isinstance(c, int) and not isinstance(c, bool) for c in channels)):
        raise BadSetting("channels must be a list of integers")
    if own.get("mask") not in (None, "alpha"):
        raise BadSetting("mask must be 'alpha' or null (send a mask image as a payload)")


def _range(name: str) -> tuple:
    return BY_NAME[name].low, BY_NAME[name].high
