"""The add-on's preferences (how to reach the dream server), and the one
place that turns them into a server link."""
import os

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import compat, installer
from .server_link import ServerConfig, get_link
from .user_errors import UserError

ADDON_ID = __package__
SERVER_FOLDER = "server"  # the environment Install Dream Server makes, in the add-on's user folder


def installed_python() -> str:
    """The Python of the environment Install Dream Server made, or ''."""
    python = installer.venv_python(compat.user_data_folder(ADDON_ID, SERVER_FOLDER))
    return python if os.path.isfile(python) else ""


def addon_prefs(context):
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def configured_link(context):
    """The link to the dream server that the preferences (or DREAM_SERVER_*) describe."""
    config = ServerConfig.resolve(addon_prefs(context), installed_python())
    problem = config.problem()
    if problem:
        raise UserError(problem)
    return get_link(config)


def draw_install(layout, context) -> None:
    """Install Dream Server: the PyTorch build it would choose and why, its progress, Cancel."""
    runtime = context.window_manager.dream
    box = layout.box()
    row = box.row(align=True)
    if runtime.installing:
        row.prop(runtime, "install_progress", text="Installing", slider=True)
        row.operator("dream.cancel_install", text="", icon="CANCEL")
    else:
        row.operator("dream.install_server", icon="IMPORT")
    box.label(text=installer.detect_torch().describe(), icon="INFO")
    if runtime.install_status:
        box.label(text=runtime.install_status, icon="ERROR" if runtime.install_status.startswith("Failed") else "NONE")


class DREAM_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_mode: EnumProperty(
        name="Server", default="SPAWN",
        items=[("SPAWN", "Start Automatically", "Start a dream server with the Python below when needed"),
               ("CONNECT", "Connect", "Use a dream server that is already running")])
    python_path: StringProperty(name="Python", subtype="FILE_PATH",
                                description="The Python interpreter where dream_core is installed (e.g. the "
                                            "project's .venv/bin/python); empty: the one Install Dream Server made")
    device: EnumProperty(name="Device", default="auto",
                         items=[("auto", "Auto", "CUDA, then MPS, then CPU"), ("cuda", "CUDA", ""),
                                ("cpu", "CPU", "")])
    address: StringProperty(name="Address", default="127.0.0.1:7860", description="HOST:PORT or a socket path")
    token_file: StringProperty(name="Token File", subtype="FILE_PATH",
                               description="File holding the server's token (its --token-file)")
    live_width: IntProperty(name="Live Dream Width", default=384, min=64, max=3840,
                            description="Width in pixels of the image Live Dream dreams (the 3D view's aspect): "
                                        "about 256-384 on a CPU, 960 or more on a GPU")

    def draw(self, context):
        layout = self.layout
        draw_install(layout, context)
        layout.prop(self, "server_mode", expand=True)
        if self.server_mode == "SPAWN":
            layout.prop(self, "python_path")
            layout.prop(self, "device")
        else:
            layout.prop(self, "address")
            layout.prop(self, "token_file")
        layout.label(text="DREAM_SERVER_PYTHON, DREAM_SERVER_ADDRESS and DREAM_SERVER_TOKEN_FILE override these.",
                     icon="INFO")
        layout.prop(self, "live_width")
        row = layout.row()
        row.operator("dream.test_connection", icon="LINKED")
        info = context.window_manager.dream.server_info
        if info:
            layout.label(text=info, icon="ERROR" if info.startswith("Failed") else "CHECKMARK")
