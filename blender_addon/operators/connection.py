import json

import bpy

from ..frames import DreamError
from ..server_link import ConnectionFailed
from .common import server_link


def describe(info: dict) -> str:
    gpu = f", {info['gpu']} ({info['gpu_memory_gib']} GiB)" if info.get("gpu") else ""
    models = ", ".join(m["name"] + ("" if m.get("offline") else " (download)") for m in info.get("models", []))
    return f"dream server {info.get('version')} on {info.get('device')}{gpu}; models: {models}"


class DREAM_OT_test_connection(bpy.types.Operator):
    """Reach the dream server (starting it if set to) and show its device, GPU and models"""

    bl_idname = "dream.test_connection"
    bl_label = "Test Connection"

    def execute(self, context):
        try:
            with server_link(context).connect() as client:
                info = describe(client.server_info)
                layers = {m["name"]: m.get("layers", []) for m in client.server_info.get("models", [])}
        except (DreamError, ConnectionFailed) as err:
            context.window_manager.dream.server_info = f"Failed: {err}"
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        context.window_manager.dream.server_info = info
        context.window_manager.dream.server_layers = json.dumps(layers)  # names beside the layer index
        self.report({"INFO"}, info)
        return {"FINISHED"}
