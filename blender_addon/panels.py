import json

import bpy

from . import compat, reports, strengths


def draw_settings(layout, context) -> None:
    settings = context.scene.dream
    layout.use_property_split = True
    layout.use_property_decorate = True  # shows the keyframe dots: settings are animatable
    layout.prop(settings, "preset")
    row = layout.row(align=True)
    row.prop(settings, "model")
    row.menu("DREAM_MT_models", text="", icon="DOWNARROW_HLT")
    layout.prop(settings, "layer")
    row = layout.row()
    row.active = not settings.layer.strip()
    row.prop(settings, "layer_index")
    name = settings.layer_name(json.loads(context.window_manager.dream.server_layers or "{}"))
    if name:
        layout.label(text=f"Dreaming layer {name}")
    col = layout.column(align=True)
    col.prop(settings, "octaves")
    col.prop(settings, "octave_scale")
    col.prop(settings, "iterations")
    col = layout.column(align=True)
    col.prop(settings, "step")
    col.prop(settings, "mix")
    layout.prop(settings, "colour_space")
    layout.prop(settings, "temporal")
    layout.prop(settings, "seed")
    layout.prop(settings, "keep_colors")
    layout.prop(settings, "tile")
    layout.prop(settings, "output_dir")
    layout.prop(settings, "strip_scene")
    layout.prop(settings, "channel")


def draw_on_render(layout, context) -> None:
    scene = context.scene
    layout.prop(scene.dream, "on_render")
    if scene.dream.on_render:
        layout.prop(scene.dream, "seam_fade")
    if scene.dream.on_render and scene.render.is_movie_format:
        layout.label(text="Choose an image format: Dream on Render writes frames, not movies", icon="ERROR")


def draw_objects(layout, context) -> None:
    """The world's strength, the one-step choices, and which objects have a strength of their own."""
    scene = context.scene
    col = layout.column(align=True)
    col.use_property_split = True
    col.prop(scene.dream, "background_strength")
    row = layout.row(align=True)
    row.operator("dream.only_selected", icon="RESTRICT_SELECT_OFF")
    row.operator("dream.clear_strengths", text="", icon="X")
    if strengths.in_use(scene) and not compat.engine_has_cryptomatte(scene):
        layout.label(text="Object strengths need Cycles or Eevee (this engine writes no Cryptomatte)", icon="ERROR")
    own = [obj for obj in scene.objects if obj.dream.use_strength and obj.type in strengths.VISIBLE_TYPES]
    if own:
        layout.label(text=f"{len(own)} object{'s' if len(own) != 1 else ''} with a Dream Strength "
                          "(Object properties)", icon="OBJECT_DATA")


def draw_actions(layout, context) -> None:
    runtime = context.window_manager.dream
    col = layout.column(align=True)
    col.enabled = not runtime.running
    row = col.row(align=True)
    row.operator("dream.render_frame", icon="RENDER_STILL")
    row.operator("dream.render_frame", text="", icon="IMAGE_DATA").use_existing = True  # the last F12 render
    row = col.row(align=True)
    row.operator("dream.render_animation", icon="RENDER_ANIMATION")
    row.operator("dream.render_animation", text="", icon="FILE_REFRESH").redream = True
    col.operator("dream.process_strip", icon="SEQUENCE")
    if runtime.status:
        lines = layout.column(align=True)
        for line in reports.panel_lines(runtime.status, context.region.width, context.preferences.system.ui_scale):
            lines.label(text=line)
    if runtime.running:
        layout.prop(runtime, "progress", text="Progress", slider=True)


class DREAM_MT_models(bpy.types.Menu):
    """The server's models, as the last Test Connection reported them."""

    bl_label = "Models"

    def draw(self, context):
        known = json.loads(context.window_manager.dream.server_layers or "{}")
        if not known:
            self.layout.label(text="Test Connection (add-on preferences) to list the server's models")
        for name in known:
            op = self.layout.operator("wm.context_set_string", text=name)
            op.data_path, op.value = "scene.dream.model", name


class DreamPanel:
    """Both panels draw the same; they differ only in where they live."""

    bl_label = "Dream Renders"

    def draw(self, context):
        draw_on_render(self.layout, context)
        draw_actions(self.layout, context)
        draw_settings(self.layout.column(), context)


class StrengthPanel:
    """Dream Strength in the Object and Collection properties, its checkbox in
    the header; the slider is active when the value is the owner's own."""

    bl_label = "Dream Strength"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"

    def draw_header(self, context):
        self.layout.prop(self.owner(context).dream, "use_strength", text="")

    def draw(self, context):
        settings = self.owner(context).dream
        self.layout.use_property_split = True
        row = self.layout.row()
        row.active = settings.use_strength
        row.prop(settings, "strength", text="Strength")
        if not settings.use_strength:
            self.layout.label(text=self.inherited(context), icon="INFO")


class DREAM_PT_object_strength(StrengthPanel, bpy.types.Panel):
    bl_context = "object"

    @classmethod
    def poll(cls, context):
        return context.object is not None and context.object.type in strengths.VISIBLE_TYPES

    @staticmethod
    def owner(context):
        return context.object

    @staticmethod
    def inherited(context) -> str:
        value, source = strengths.collection_strengths(context.scene).get(context.object.name, (1.0, None))
        return f"Dreams at {value:.2f} from collection {source}" if source else "Dreams at 1 (as usual)"


class DREAM_PT_collection_strength(StrengthPanel, bpy.types.Panel):
    bl_context = "collection"

    @classmethod
    def poll(cls, context):
        return getattr(context, "collection", None) is not None

    @staticmethod
    def owner(context):
        return context.collection

    @staticmethod
    def inherited(context) -> str:
        return "Its objects dream at their own strength, else a parent collection's, else 1"


class DREAM_PT_objects(bpy.types.Panel):
    bl_label = "Objects"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"
    bl_parent_id = "DREAM_PT_output"

    def draw(self, context):
        draw_objects(self.layout, context)


class DREAM_PT_output(DreamPanel, bpy.types.Panel):
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"


class DREAM_PT_sequencer(DreamPanel, bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Dream"


CLASSES = (DREAM_MT_models, DREAM_PT_output, DREAM_PT_objects, DREAM_PT_sequencer, DREAM_PT_object_strength,
           DREAM_PT_collection_strength)
