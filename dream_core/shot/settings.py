"""Every dream setting, once: its name on the wire, default, the range the
server accepts, the range the panel's slider offers, its label and help,
and where it can be set. The server checks requests against it
(``dream_core.config``), the CLI makes its options from it
(``dream_core.cli.parser``) and the add-on its scene properties
(``blender_addon.properties``). Standard library only: the add-on bundles it.

A setting a front end does not offer says why in ``not_in``; a default a
front end changes says why in ``defaults``. tests/test_settings.py holds
every front end to this table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

BLENDER_INT_MAX = 2**31 - 1  # Blender's IntProperty is 32-bit
TEMPORAL_MODES = ("none", "blend", "flow", "vectors", "auto")
PRECISIONS = ("auto", "fp32", "bf16")
FRONTS = ("cli", "panel")


@dataclass(frozen=True)
class Setting:
    name: str  # the key in a request's params; the CLI's flag is it with dashes, the panel's property it
    default: Any
    label: str
    help: str
    low: Optional[float] = None  # what the server accepts (numbers)
    high: Optional[float] = None
    slider: Optional[tuple[float, float]] = None  # the panel's slider, where narrower than what is accepted
    choices: tuple = ()
    engine: bool = False  # how hard and at which scales (dream_core.config.DreamConfig), else what to dream
    not_in: dict = field(default_factory=dict)  # front end -> why it does not offer this setting
    defaults: dict = field(default_factory=dict)  # front end -> (its default, why it differs)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def default_in(self, front: str) -> Any:
        return self.defaults[front][0] if front in self.defaults else self.default

    def offered_in(self, front: str) -> bool:
        return front not in self.not_in


SETTINGS = (
    Setting("model", "lite0", "Model", "network that dreams, by the server's name for it (see 'models')"),
    Setting("weights", "default", "Weights", "a .pth state dict instead of the model's default weights",
            not_in={"panel": "a server takes only .pth files from its own --weights-dir; the panel uses the "
                             "default weights"},
            defaults={"cli": (None, "no --weights is the default weights: the option takes a file")}),
    Setting("layer", None, "Layer", "layer to amplify, or a sum such as 'block8+0.5*block11'; "
                                    "'block10:3,17' for channels; empty: Layer Index, else the model's default",
            defaults={"panel": ("", "a text field holds no None: empty means the same")}),
    Setting("layer_index", -1, "Layer Index", "a layer by position from the input, for any model (animatable: "
                                              "keyframe the depth); -1: the model's default",
            low=-1, high=1000, slider=(-1, 40)),
    Setting("channels", None, "Channels", "amplify only these channels of the layer, e.g. 3,17",
            not_in={"panel": "the Layer field takes channels too: 'block10:3,17'"}),
    Setting("keep_colors", False, "Keep Colours", "dream brightness only and keep the render's colours"),
    Setting("mask", None, "Mask", "where to dream: the frame's alpha ('alpha')",
            not_in={"panel": "the add-on dreams objects by their Dream Strength (object and collection "
                             "properties) instead"}),
    Setting("objects", None, "Object Strengths", "how hard each object of the Cryptomatte pass dreams",
            not_in={"cli": "set with --mask cryptomatte:NAMES and --mask-strength",
                    "panel": "set per object and collection (Dream Strength) and Background Strength"}),
    Setting("temporal", "none", "Temporal", "how consecutive frames stay coherent: carry the last dream along "
                                            "Blender's Vector pass (vectors), optical flow (flow), either (auto), or "
                                            "keep it where the render did not change (blend, static shots)",
            choices=TEMPORAL_MODES,
            defaults={"panel": ("auto", "the panel dreams animations of one scene; a CLI folder or a request may "
                                        "hold unrelated images")}),
    Setting("mix", 1.0, "Mix", "the output, from the render (0) to the dream (1), up to 2 to exaggerate; "
                               "keyframe it to fade the dream in and out", low=0.0, high=2.0),
    Setting("octaves", 4, "Octaves", "scales to dream at; those under 32 px a side are left out, so a small "
                                     "frame dreams at fewer", low=1, high=12, engine=True),
    Setting("octave_scale", 1.4, "Octave Scale", "size ratio between octaves", low=1.01, high=4.0,
            slider=(1.05, 3.0), engine=True),
    Setting("iterations", 10, "Iterations", "gradient steps per octave", low=0, high=1000, slider=(1, 200),
            engine=True),
    Setting("step", 0.01, "Step", "mean change per pixel and step, in [0, 1] units", low=0.0, high=1.0,
            slider=(0.0, 0.2), engine=True),
    Setting("jitter", 32, "Jitter", "random shift in px between steps", low=0, high=512, engine=True,
            not_in={"panel": "an engine detail: the default hides the network's grid at every size"}),
    Setting("tile", -1, "Tile", "largest tile side in px, bounds memory; 0: whole frame; -1: automatic (512 on CPU; "
                                "on CUDA whole frames up to 1440p, else 1024)", low=-1, high=16384,
            slider=(-1, 8192), engine=True),
    Setting("tile_margin", 32, "Tile Margin", "context around each tile in px, rounded up to a multiple of 32 "
                                              "(the networks' stride)", low=0, high=256, engine=True,
            not_in={"panel": "an engine detail: the default hides every seam"}),
    Setting("tile_batch", 0, "Tile Batch", "tiles per forward pass; 0: automatic (4 on CUDA, 1 on CPU)",
            low=0, high=256, engine=True, not_in={"panel": "an engine detail: automatic fits the device"}),
    Setting("seed", 0, "Seed", "random seed; same seed, same dream", low=0, high=2**63 - 1, engine=True),
    Setting("precision", "auto", "Precision", "fp32, bf16 or auto (bf16 on CUDA)", choices=PRECISIONS, engine=True,
            not_in={"panel": "an engine detail: auto is the fast path where the device has one"}),
)
BY_NAME = {s.name: s for s in SETTINGS}


def panel_range(setting: Setting) -> dict:
    """A numeric setting's limits as a Blender property takes them: hard
    limits what the server accepts (within Blender's 32-bit ints), the
    slider the panel's range."""
    high = setting.high
    if isinstance(setting.default, int) and high is not None:
        high = min(high, BLENDER_INT_MAX)
    limits = {"min": setting.low, "max": high}
    if setting.slider is not None:
        limits.update(soft_min=setting.slider[0], soft_max=setting.slider[1])
    return {k: v for k, v in limits.items() if v is not None}


def option(setting: Setting, default: Any) -> dict:
    """``argparse`` keywords for a setting's option (its flag is ``setting.flag``)."""
    options = {"default": default, "help": setting.help}
    if setting.choices:
        options["choices"] = setting.choices
    elif type(setting.default) is bool:
        options["action"] = "store_true"
    elif setting.default is not None:
        options["type"] = type(setting.default)
    return options


def out_of_range(setting: Setting, value: Any) -> Optional[str]:
    """Why ``value`` is not one the server takes for ``setting``, or None."""
    if setting.choices and value not in setting.choices:
        return f"{setting.name} must be one of {', '.join(setting.choices)}, got {value!r}"
    if setting.low is not None and not setting.low <= value <= setting.high:
        return f"{setting.name} must be between {setting.low} and {setting.high}, got {value!r}"
    return None
