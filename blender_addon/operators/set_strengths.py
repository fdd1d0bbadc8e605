"""The operators that set many objects' Dream Strength in one step: Dream
Only Selected and Clear Object Strengths (what a strength is and how it is
found: ``strengths``)."""
import bpy

from .. import strengths


class DREAM_OT_only_selected(bpy.types.Operator):
    """Dream the selected objects only: they get strength 1; every other object and the world 0"""

    bl_idname = "dream.only_selected"
    bl_label = "Dream Only Selected"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if not any(obj.type in strengths.VISIBLE_TYPES for obj in context.selected_objects):
            cls.poll_message_set("Select the objects to dream")
            return False
        return True

    def execute(self, context):
        chosen = [obj for obj in context.selected_objects if obj.type in strengths.VISIBLE_TYPES]
        strengths.dream_only(context.scene, chosen)
        self.report({"INFO"}, f"Dreaming {len(chosen)} object{'s' if len(chosen) != 1 else ''} only")
        return {"FINISHED"}


class DREAM_OT_clear_strengths(bpy.types.Operator):
    """Every object and collection dreams at 1 again, and the world too"""

    bl_idname = "dream.clear_strengths"
    bl_label = "Clear Object Strengths"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        strengths.clear(context.scene)
        return {"FINISHED"}
