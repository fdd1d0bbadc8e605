"""Dream Renders: DeepDream your renders and animations into the Video Sequence Editor.

The add-on needs neither torch nor NumPy: it talks to a dream server
(``python -m dream_core serve``) over a local socket, starting it itself
when set to. Operators (``operators/``) are thin: they gather settings and
drive ``runs`` (Dream Animation) or, through Blender's render handlers,
``on_render`` (Dream on Render). Those are thin bpy shells too: what to
keep, render, dream and write is decided by plain modules without bpy
(``frame_walk``, ``chunk_dreaming``, ``render_chunk``, ``frame_paths``,
``render_records``, ``dream_provenance``, ``reports``...), the worker
thread is ``dreaming`` and its messages are handled by type through one
``dispatch.Dispatcher``; ``wire/`` (the protocol and client) and
``shot/`` (the settings, frame plans, provenance and the shot planner) are
bundled from dream_core by build.py.
"""

bl_info = {
    "name": "Dream Renders",
    "author": "Dream Renders developers",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Properties > Output > Dream Renders; Sequencer > Sidebar > Dream; 3D Viewport header > Live Dream",
    "description": "DeepDream renders and animations into the Video Sequencer",
    "category": "Render",
}

import bpy  # noqa: E402

from . import (  # noqa: E402
    cli_command,
    compat,
    live_view,
    on_render,
    panels,
    preferences,
    properties,
    scene_state,
    server_link,
    write_refusal,
)
from .operators import CLASSES as OPERATOR_CLASSES  # noqa: E402

compat.drop_script_main_alias()  # the imports above bring in multiprocessing: see there

CLASSES = (preferences.DREAM_AddonPreferences, *OPERATOR_CLASSES, *panels.CLASSES)


def register() -> None:
    properties.register()
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    cli_command.register()
    write_refusal.register()
    scene_state.register()
    on_render.register()
    live_view.register()


def unregister() -> None:
    live_view.unregister()
    on_render.unregister()
    scene_state.unregister()
    write_refusal.unregister()
    cli_command.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
    server_link.shutdown_link()
