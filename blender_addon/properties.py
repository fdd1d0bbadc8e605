"""Scene settings (``scene.dream``) and run-time status on the window
manager (never saved in the .blend). Numeric settings are animatable:
keyframe the mix, step, octaves or the layer and each frame is dreamed with
its own values. Models and their layers are the server's: the add-on keeps
no copy of the list (Test Connection fetches it)."""
from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    IntVectorProperty,
    PointerProperty,
    StringProperty,
)

from . import compat
from .panel_settings import PANEL_SETTINGS, PRESETS, leaves_preset, params_of, shown_layer
from .shot.settings import BY_NAME, panel_range

_applying: set = set()  # the settings whose preset is being applied (their updates are the preset's own)


def _setting(name: str, kind, **own):
    """A scene property for a dream setting, as shot.settings defines it;
    ``own``: the panel's additions (an update, a subtype, its own words)."""
    setting = BY_NAME[name]
    options = {"name": setting.label, "default": setting.default_in("panel"),
               "description": setting.help[0].upper() + setting.help[1:]}
    if kind in (IntProperty, FloatProperty):
        options.update(panel_range(setting))
    return kind(**{**options, **own})


def _apply_preset(self, context) -> None:
    _applying.add(self.as_pointer())
    try:
        for key, value in PRESETS.get(self.preset, {}).items():
            setattr(self, key, value)
    finally:
        _applying.discard(self.as_pointer())


def _leave_preset(self, context) -> None:
    """A setting of a preset changed by hand: the panel says Custom (not the
    preset's name over settings that are not the preset's any more)."""
    preset = PRESETS.get(self.preset)
    if self.as_pointer() in _applying or preset is None:
        return
    if leaves_preset({key: getattr(self, key) for key in preset}, preset):
        self.preset = "CUSTOM"


class DreamSceneSettings(bpy.types.PropertyGroup):
    on_render: BoolProperty(
        name="Dream on Render", default=False,
        description="Blender's own renders (Render Animation, blender -b -a / -f) write dreamed frames to the "
                    "scene's output path in its file format; the raw renders are kept in the Dream output folder")
    colour_space: EnumProperty(
        name="Dream On", default="SHOWN",
        description="Which image the dream works on: the one you see, or the render's light",
        items=[("SHOWN", "As Shown", "The image as the view transform shows it (view transform, look, exposure, "
                                     "gamma): the dream keeps its full strength in what you see. EXR output gets "
                                     "the dream carried back to scene light"),
               ("LINEAR", "Scene Linear", "The render's light, before the view transform, as a compositor node "
                                          "would: the view transform then compresses the dream with the image "
                                          "(softer, for grading the dream with the render)")])
    seam_fade: IntProperty(
        name="Seam Fade", default=5, min=0, max=50,
        description="Render farm chunks rendered side by side (blender -b -s A -e B -a on several machines) dream "
                    "chains of their own; the first this many frames of a chunk are then written as a cross-fade "
                    "from the chunk before's chain, by whichever of the two ends second. 0: a hard cut. A chunk "
                    "that starts after the one before has finished carries its dream on exactly and needs none")
    shot_range: IntVectorProperty(
        name="Shot", size=2, default=(0, -1), options={"HIDDEN"},
        description="The frame range when the .blend was last saved (-1: never): the shot a farm renders in chunks "
                    "with -s/-e, which change the scene's range but not this")
    preset: EnumProperty(name="Preset", items=[("CUSTOM", "Custom", "Your own settings"),
                                               ("SUBTLE", "Subtle", "A light touch of texture"),
                                               ("CLASSIC", "Classic", "The DeepDream look: eyes and swirls"),
                                               ("DEEP", "Deep", "Strong, deeper-layer dreams")],
                         default="CLASSIC", update=_apply_preset)
    # the dream settings: defaults, limits (the server's; the slider the panel's) and help from shot.settings
    model: _setting("model", StringProperty, description="Network that dreams, by the server's name for it (the "
                                                         "menu beside lists the server's models after Test "
                                                         "Connection)")
    layer: _setting("layer", StringProperty)
    layer_index: _setting("layer_index", IntProperty, update=_leave_preset)
    octaves: _setting("octaves", IntProperty, update=_leave_preset)
    octave_scale: _setting("octave_scale", FloatProperty, update=_leave_preset)
    iterations: _setting("iterations", IntProperty, update=_leave_preset)
    step: _setting("step", FloatProperty, precision=4, update=_leave_preset)
    mix: _setting("mix", FloatProperty, subtype="FACTOR")
    seed: _setting("seed", IntProperty)
    keep_colors: _setting("keep_colors", BoolProperty)
    temporal: _setting(
        "temporal", EnumProperty,
        items=[("auto", "Auto", "Exact motion from the Vector pass when the frames have it, optical flow otherwise"),
               ("vectors", "Motion Vectors", "Carry the last dream along the renderer's Vector pass"),
               ("flow", "Optical Flow", "Carry the last dream along motion estimated between the renders"),
               ("blend", "Blend", "Keep the last dream where the render did not change (static shots)"),
               ("none", "None", "Dream every frame on its own (flickers)")])
    tile: _setting("tile", IntProperty)
    output_dir: StringProperty(name="Output", default="//dream/", subtype="DIR_PATH",
                               options=compat.BLEND_RELATIVE_PATH,
                               description="Where renders and dreamed frames are kept")
    strip_scene: PointerProperty(type=bpy.types.Scene, name="Strip Scene",
                                 description="Where dreamed animations go as strips; empty: a scene of their own "
                                             "('<scene> Dream', made on first use), so this scene still renders "
                                             "its 3D view")
    channel: IntProperty(name="Channel", default=0, min=0, max=128,
                         description="Sequencer channel for dreamed strips; 0: the first free one")
    background_strength: FloatProperty(
        name="Background Strength", default=1.0, min=0.0, max=2.0, subtype="FACTOR",
        description="How hard the world (what no object covers) dreams: 0 keeps it as rendered, 2 doubles the "
                    "ascent")

    def to_params(self) -> dict:
        """The server's params for the current frame (see panel_settings.params_of)."""
        return params_of({s.name: getattr(self, s.name) for s in PANEL_SETTINGS})

    def layer_name(self, known: dict) -> str | None:
        """The layer dreamed, for display (see panel_settings.shown_layer)."""
        return shown_layer(self.layer, self.layer_index, self.model, known)


def _own_strength(self, context) -> None:
    self.use_strength = True  # editing the value means this one should count


_STRENGTH = dict(name="Dream Strength", default=1.0, min=0.0, max=2.0, subtype="FACTOR", update=_own_strength)


class DreamObjectSettings(bpy.types.PropertyGroup):
    """An object's own dream strength (``object.dream``); without one it
    takes its collection's, else 1."""

    use_strength: BoolProperty(name="Own Dream Strength", default=False,
                               description="This object dreams at its own strength, whatever its collections say")
    strength: FloatProperty(**_STRENGTH, description="How hard this object dreams: 0 keeps its pixels as rendered, "
                                                     "1 as usual, 2 doubles the ascent (animatable)")


class DreamCollectionSettings(bpy.types.PropertyGroup):
    """A collection's dream strength (``collection.dream``), for the objects
    in it and in its children that have none of their own."""

    use_strength: BoolProperty(name="Collection Dream Strength", default=False,
                               description="Objects in this collection dream at its strength unless they have "
                                           "their own")
    strength: FloatProperty(**_STRENGTH, description="How hard this collection's objects dream: 0 keeps them as "
                                                     "rendered, 1 as usual, 2 doubles the ascent")


class DreamRuntime(bpy.types.PropertyGroup):
    """Status of the running job, shown in the panels."""

    status: StringProperty(name="Status", default="")
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    running: BoolProperty(default=False)
    server_info: StringProperty(default="")
    server_layers: StringProperty(default="{}")  # JSON {model: [layers]} from the last Test Connection
    installing: BoolProperty(default=False)
    install_status: StringProperty(default="")
    install_progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")

    def say(self, text: str, over: str = "") -> bool:
        """Sets the panel's status line (the runs, Dream on Render and Live
        Dream share it), only when it changes: a write redraws the panel.
        ``over``: only over a line that starts so (Live Dream replaces only
        what it said itself). Whether it was written."""
        if self.status == text or not self.status.startswith(over):
            return False
        self.status = text
        return True


CLASSES = (DreamSceneSettings, DreamObjectSettings, DreamCollectionSettings, DreamRuntime)
OWNERS = {"Scene": DreamSceneSettings, "Object": DreamObjectSettings, "Collection": DreamCollectionSettings,
          "WindowManager": DreamRuntime}


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    for owner, cls in OWNERS.items():
        getattr(bpy.types, owner).dream = PointerProperty(type=cls)


def unregister() -> None:
    for owner in OWNERS:
        delattr(getattr(bpy.types, owner), "dream")
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
