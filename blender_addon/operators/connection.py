import json

import bpy

from ..preferences import configured_link
from ..reports import server_description
from ..server_link import ConnectionProbe
from ..user_errors import UserError


class DREAM_OT_test_connection(bpy.types.Operator):
    """Reach the dream server (starting it if set to) and show its device, GPU and models"""

    bl_idname = "dream.test_connection"
    bl_label = "Test Connection"

    _timer = None
    _probe = None

    def _begin(self, context) -> bool:
        try:
            self._probe = ConnectionProbe(configured_link(context))
        except UserError as err:
            context.window_manager.dream.server_info = f"Failed: {err}"
            self.report({"ERROR"}, str(err))
            return False
        return True

    # blocking: scripts and --background
    def execute(self, context):
        if not self._begin(context):
            return {"CANCELLED"}
        self._probe.thread.join()
        return self._finish(context)

    # in the UI: the probe runs on its thread, a timer looks in
    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        if not self._begin(context):
            return {"CANCELLED"}
        context.window_manager.dream.server_info = "Connecting (starting a server can take a minute)..."
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER" or not self._probe.done:
            return {"PASS_THROUGH"}
        self._quit(context)
        return self._finish(context)

    def cancel(self, context):
        self._quit(context)

    def _quit(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None

    def _finish(self, context):
        runtime = context.window_manager.dream
        probe = self._probe
        if probe.error is not None:
            runtime.server_info = f"Failed: {probe.error}"
            self.report({"ERROR"}, probe.error)
            return {"CANCELLED"}
        runtime.server_info = server_description(probe.info)
        layers = {m["name"]: m.get("layers", []) for m in probe.info.get("models", [])}
        runtime.server_layers = json.dumps(layers)  # names beside the layer index
        for area in getattr(context.screen, "areas", ()):
            area.tag_redraw()
        self.report({"INFO"}, runtime.server_info)
        return {"FINISHED"}
