"""Install Dream Server inside real Blender (bpy 5.0.1 and ``blender -b``
3.4), run like blender_scenarios.py. The environment it resumes was made
by the test and sees the test environment's packages, so pip downloads
nothing (DREAM_TEST_ENVIRONMENT)."""
import importlib
import os
import shutil
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blender_scenarios import error_of, install, run_main  # noqa: E402


def environment_seeing_tests(folder: str) -> None:
    """What an interrupted install leaves: the environment, no packages yet
    (here it also sees the test environment's, PyTorch among them): the
    one the test made, copied (tests/test_installer.py: interrupted_install)."""
    shutil.copytree(os.environ["DREAM_TEST_ENVIRONMENT"], folder, symlinks=True, dirs_exist_ok=True)


def scenario_install_server(workdir, zip_path):
    module = install(zip_path)
    compat = importlib.import_module(f"{module}.compat")
    preferences = importlib.import_module(f"{module}.preferences")
    folder = compat.user_data_folder(preferences.ADDON_ID, preferences.SERVER_FOLDER)
    before = preferences.installed_python()
    environment_seeing_tests(folder)
    error = error_of(lambda: bpy.ops.dream.install_server(exit_on_error=False))
    runtime = bpy.context.window_manager.dream
    if bpy.app.version < (4, 2, 0):
        bpy.context.preferences.view.show_splash = False
        bpy.ops.wm.save_userpref()  # the add-on stays installed for the command lines that follow
    return {"error": error, "status": runtime.install_status, "info": runtime.server_info, "folder": folder,
            "python": preferences.addon_prefs(bpy.context).python_path, "before": before,
            "after": preferences.installed_python()}


def scenario_prepare_install(workdir, zip_path):
    """The add-on installed and an environment to resume, for a Blender with a window."""
    module = install(zip_path)
    compat = importlib.import_module(f"{module}.compat")
    preferences = importlib.import_module(f"{module}.preferences")
    environment_seeing_tests(compat.user_data_folder(preferences.ADDON_ID, preferences.SERVER_FOLDER))
    bpy.context.preferences.view.show_splash = False
    bpy.ops.wm.save_userpref()
    return {}


if __name__ == "__main__":
    run_main(globals())
