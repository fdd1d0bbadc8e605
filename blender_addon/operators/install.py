import os
import shutil
import sys
from typing import Optional

import bpy

from .. import compat, installer
from ..preferences import ADDON_ID, SERVER_FOLDER, addon_prefs, configured_link
from ..reports import server_description
from ..server_link import ConnectionProbe
from ..user_errors import UserError
from .run_operator import report_failure

_running: Optional[installer.Installer] = None  # the install in progress, for Cancel


def make_installer(python: str = "") -> installer.Installer:
    """An installer for this machine: the add-on's own folder, its bundled
    wheel, the PyTorch build its GPU needs, and the Pythons to try."""
    addon_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return installer.Installer(compat.user_data_folder(ADDON_ID, SERVER_FOLDER), installer.bundled_wheel(addon_dir),
                               installer.detect_torch(),
                               [python, sys.executable, shutil.which("python3"), shutil.which("python")])


class DREAM_OT_install_server(bpy.types.Operator):
    """Make a Python environment with PyTorch for this machine's GPU and the dream server, and use it"""

    bl_idname = "dream.install_server"
    bl_label = "Install Dream Server"

    python: bpy.props.StringProperty(
        name="Python", default="", options={"SKIP_SAVE"},
        description="The Python 3.10+ to make the environment with; empty: Blender's own, else python3")
    exit_on_error: bpy.props.BoolProperty(
        name="Exit on Error", default=True, options={"SKIP_SAVE"},
        description="In background mode (blender -b), end Blender with status 1 when the install fails")
    _timer = None

    def _begin(self, context) -> Optional[installer.Installer]:
        global _running
        if _running is not None and not _running.done:
            self.report({"WARNING"}, "Dream Renders: an install is already running")
            return None
        try:
            _running = make_installer(self.python)
        except installer.InstallError as err:
            report_failure(self, f"Install Dream Server failed: {err}")
            return None
        print(f"Dream Renders: installing the dream server into {_running.folder}; {_running.torch.describe()}",
              flush=True)
        return _running

    # blocking: scripts and blender -b (farm machines)
    def execute(self, context):
        job = self._begin(context)
        if job is None:
            return {"CANCELLED"}
        job.run(on_line=lambda line: print(f"  {line}", flush=True))
        return self._finish(context, job)

    # in the UI: pip runs on a thread; a timer shows its progress
    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        job = self._begin(context)
        if job is None:
            return {"CANCELLED"}
        job.start()
        context.window_manager.dream.installing = True
        self._timer = context.window_manager.event_timer_add(0.25, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        runtime = context.window_manager.dream
        runtime.install_status, runtime.install_progress = _running.status, _running.fraction
        _redraw_preferences(context)
        if not _running.done:
            return {"PASS_THROUGH"}
        self._quit(context)
        return self._finish(context, _running)

    def cancel(self, context):
        if _running is not None:
            _running.cancel()
        self._quit(context)

    def _quit(self, context) -> None:
        context.window_manager.dream.installing = False
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None

    def _finish(self, context, job: installer.Installer):
        runtime = context.window_manager.dream
        if job.error:
            runtime.install_status = f"Failed: {job.error}"
            report_failure(self, f"Install Dream Server failed: {job.error}")
            return {"CANCELLED"}
        prefs = addon_prefs(context)
        if prefs is not None:
            prefs.server_mode, prefs.python_path = "SPAWN", job.python
        if not bpy.app.background:  # the window stays live while the server starts: Test Connection's own way
            runtime.install_status = f"Installed (PyTorch for {job.torch.kind}) in {job.folder}"
            bpy.ops.dream.test_connection("INVOKE_DEFAULT")
            return {"FINISHED"}
        try:
            probe = ConnectionProbe(configured_link(context))
            probe.thread.join()  # the first start of a server: seconds, once
        except UserError as err:
            probe_error = str(err)
        else:
            probe_error = probe.error
        if probe_error:
            runtime.install_status = f"Failed: installed, but the server did not start: {probe_error}"
            report_failure(self, runtime.install_status)
            return {"CANCELLED"}
        runtime.server_info = server_description(probe.info)
        runtime.install_status = f"Installed: {runtime.server_info}"
        print(f"Dream Renders: {runtime.install_status}", flush=True)
        self.report({"INFO"}, "Dream server installed")
        return {"FINISHED"}


class DREAM_OT_cancel_install(bpy.types.Operator):
    """Stop the install; pressing Install Dream Server again carries on from what is done"""

    bl_idname = "dream.cancel_install"
    bl_label = "Cancel Install"

    def execute(self, context):
        if _running is not None:
            _running.cancel()
        return {"FINISHED"}


def _redraw_preferences(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
