"""Live Dream's toggle (the 3D view header's button): thin; the work is
:mod:`..live_view` (bpy) and the plain modules it drives."""
import bpy

from .. import live_view
from ..preferences import addon_prefs, configured_link
from ..user_errors import UserError

DEFAULT_WIDTH = 384


class DREAM_OT_live_viewport(bpy.types.Operator):
    """Dream this 3D view live, as you work in it (again: back to the plain view)"""

    bl_idname = "dream.live_viewport"
    bl_label = "Live Dream"
    bl_options = {"REGISTER"}

    width: bpy.props.IntProperty(
        name="Preview Width", default=0, min=0, max=3840, options={"SKIP_SAVE"},
        description="Width in pixels of the image dreamed (the view's aspect); 0: the add-on preferences' Live "
                    "Dream Width")

    @classmethod
    def poll(cls, context):
        problem = live_view.unavailable(context)
        if problem:
            cls.poll_message_set(problem)
        return not problem

    def execute(self, context):
        if live_view.is_on(context.area):
            live_view.stop(context.area)
            return {"FINISHED"}
        try:
            link = configured_link(context)
        except UserError as err:
            self.report({"ERROR"}, f"Dream Renders: {err}")
            return {"CANCELLED"}
        prefs = addon_prefs(context)
        live_view.start(context.area, link, self.width or getattr(prefs, "live_width", DEFAULT_WIDTH))
        return {"FINISHED"}
