"""The panel's dream settings as plain values, with no bpy: which settings
the panel offers (:mod:`.shot.settings` defines each once), its presets, the
server's params made from the values Blender holds (a frame's provenance
rests on them), the layer the panel names, and whether a preset still holds.
``properties.py`` declares them as Blender properties."""
from __future__ import annotations

from typing import Optional

from .shot.settings import BY_NAME, SETTINGS

PANEL_SETTINGS = tuple(s for s in SETTINGS if s.offered_in("panel"))
PRESETS = {
    "SUBTLE": dict(octaves=3, iterations=6, step=0.004, octave_scale=1.4, layer_index=-1),
    "CLASSIC": dict(octaves=4, iterations=10, step=0.01, octave_scale=1.4, layer_index=-1),
    "DEEP": dict(octaves=5, iterations=15, step=0.015, octave_scale=1.5, layer_index=12),
}


def as_typed(value):
    """A float as typed: Blender stores 0.01 as 0.00999999977648, and the
    params (and so every frame's provenance) must not carry float32 noise."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


def params_of(values: dict) -> dict:
    """The server's params from the panel's ``values`` (every panel setting,
    by name, as Blender holds it). A layer index goes as an index (the
    server knows each model's layers), and only when no layer is named."""
    params = {s.name: as_typed(values[s.name]) for s in PANEL_SETTINGS}
    params["model"] = values["model"].strip() or BY_NAME["model"].default
    layer = params.pop("layer").strip()
    index = params.pop("layer_index")
    if layer:
        params["layer"] = layer
    elif index >= 0:
        params["layer_index"] = index
    return params


def shown_layer(layer: str, layer_index: int, model: str, known: dict) -> Optional[str]:
    """The layer dreamed, for display, from ``known`` model layers (what the
    server said at Test Connection); None when unknown or the default."""
    if layer.strip():
        return layer.strip()
    layers = known.get(model)
    if layer_index < 0 or not layers:
        return None
    return layers[min(layer_index, len(layers) - 1)]


def leaves_preset(values: dict, preset: dict) -> bool:
    """Whether settings changed by hand are not ``preset``'s any more (the panel then says Custom)."""
    return any(abs(values[key] - value) > 1e-6 for key, value in preset.items())
