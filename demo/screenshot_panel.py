"""Inside Blender with a window (e.g. under Xvfb): install the add-on, show
its panel in Properties › Output and save a screenshot.

    xvfb-run -s "-screen 0 1600x1000x24" blender --factory-startup \
        --python demo/screenshot_panel.py -- ADDON_ZIP OUT.png [WITHOUT.png]

With WITHOUT.png it then disables the add-on and saves the same area again:
a test compares the two to know the panel was really drawn.
"""
import os
import sys

import bpy

args = sys.argv[sys.argv.index("--") + 1:]
zip_path, out = args[:2]
without = args[2] if len(args) > 2 else None
MODULE = "bl_ext.user_default.dream_renders" if bpy.app.version >= (4, 2, 0) else "dream_renders"


def install() -> None:
    if bpy.app.version >= (4, 2, 0):
        bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    else:
        bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
        bpy.ops.preferences.addon_enable(module="dream_renders")


def big_area():
    window = bpy.context.window_manager.windows[0]
    return window, max(window.screen.areas, key=lambda a: a.width * a.height)


def show_panel() -> None:
    """The big 3D view becomes a Properties editor on the Output tab."""
    bpy.context.preferences.view.show_splash = False
    _, area = big_area()
    area.type = "PROPERTIES"  # its tabs exist once it has been drawn: see output_tab()
    scene = bpy.context.scene
    scene.dream.keyframe_insert("mix", frame=1)
    bpy.context.window_manager.dream.status = "Done: 16 frame(s) dreamed, 0 already there"


def output_tab():
    big_area()[1].spaces.active.context = "OUTPUT"
    bpy.app.timers.register(scroll, first_interval=1.0)


def scroll():
    """Scrolls past Blender's own output panels to ours."""
    window, area = big_area()
    region = next(r for r in area.regions if r.type == "WINDOW")
    with bpy.context.temp_override(window=window, area=area, region=region):
        for _ in range(30):
            bpy.ops.view2d.scroll_down(deltay=40)
    bpy.app.timers.register(shoot, first_interval=1.0)


def save_area(path: str) -> None:
    window, area = big_area()
    with bpy.context.temp_override(window=window, area=area):
        bpy.ops.screen.screenshot_area(filepath=path) if hasattr(bpy.ops.screen, "screenshot_area") else \
            bpy.ops.screen.screenshot(filepath=path)
    print(f"screenshot: {path} ({os.path.getsize(path)} bytes)", flush=True)


def shoot():
    save_area(out)
    if without is None:
        bpy.ops.wm.quit_blender()
        return
    bpy.ops.preferences.addon_disable(module=MODULE)
    big_area()[1].tag_redraw()
    bpy.app.timers.register(shoot_without, first_interval=1.0)


def shoot_without():
    save_area(without)
    bpy.ops.wm.quit_blender()


install()
show_panel()
bpy.app.timers.register(output_tab, first_interval=2.0)
