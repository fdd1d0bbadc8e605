"""Per-object strengths inside real Blender (bpy 5.0.1 and ``blender -b``
3.4), run like blender_scenarios.py. Standard library only: the pixels are
compared by the test, which reads the files these scenarios leave."""
import os
import shutil
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blender_scenarios import (  # noqa: E402
    _render_like_f12,
    build_scene,
    error_of,
    fast_settings,
    install,
    output_report,
    run_main,
    set_output,
    visible,
)

SIZE = (96, 72)


def set_strengths(scene) -> None:
    """The cube kept clean (0); the sphere keyed from 0 on frame 1 to 2 on frame 3."""
    scene.dream.temporal = "vectors"
    bpy.data.objects["Cube"].dream.strength = 0.0
    sphere = bpy.data.objects["Sphere"].dream
    sphere.strength = 0.0
    sphere.keyframe_insert("strength", frame=1)
    sphere.strength = 2.0
    sphere.keyframe_insert("strength", frame=3)


def scenario_object_strengths(workdir, zip_path):
    """Dream Animation with no strengths (its dreams copied aside), then with
    strengths (the renders, made without Cryptomatte, are made again), then
    Dream on Render with the same; and Blender's own frames."""
    scene = build_scene(workdir, frames=3, width=SIZE[0], height=SIZE[1])
    module = install(zip_path)
    fast_settings(scene)
    scene.render.dither_intensity = 0.0  # Blender's own frames are compared pixel by pixel
    scene.dream.temporal = "vectors"
    bpy.ops.dream.render_animation()
    shutil.copytree(os.path.join(workdir, "dream", "frames"), os.path.join(workdir, "plain"))
    set_strengths(scene)
    scene_frames = __import__(f"{module}.scene_frames", fromlist=["dream_params"])
    params = {}
    for frame in (1, 2, 3):
        scene.frame_set(frame)
        params[frame] = scene_frames.dream_params(scene).get("objects")
    set_output(scene, "//own/shot_###", "png8")
    before = output_report(scene)
    bpy.ops.dream.render_animation()
    after = output_report(scene)
    own = [_render_like_f12(scene, os.path.join(workdir, "own", f"shot_{f:03d}"), frame=f) for f in (1, 2, 3)]
    scene.dream.on_render = True
    set_output(scene, "//on_render/shot_###", "png8")
    bpy.ops.render.render(animation=True)
    return {"params": params, "before": before, "after": after, "own": own,
            "crypto_after": [layer.use_pass_cryptomatte_object for layer in scene.view_layers],
            "masked": sorted(visible(os.path.join(workdir, "dream", "frames"))),
            "on_render": sorted(visible(os.path.join(workdir, "on_render"))),
            "plain": sorted(visible(os.path.join(workdir, "plain")))}


def scenario_collections_and_selection(workdir, zip_path):
    """A collection's strength reaches its objects (a child collection's
    first, an object's own before either); Use Existing Render of an F12
    render without Cryptomatte says what to do; Dream Only Selected and Clear."""
    scene = build_scene(workdir, frames=1)
    module = install(zip_path)
    strengths = __import__(f"{module}.strengths", fromlist=["strength_params"])
    props = bpy.data.collections.new("Props")
    scene.collection.children.link(props)
    small = bpy.data.collections.new("Small props")
    props.children.link(small)
    for name, collection in (("Cube", props), ("Sphere", small), ("Torus", props)):
        collection.objects.link(bpy.data.objects[name])
        scene.collection.objects.unlink(bpy.data.objects[name])
    props.dream.strength = 0.0
    small.dream.strength = 2.0
    bpy.data.objects["Torus"].dream.strength = 1.5
    inherited = strengths.strength_params(scene)
    scene.render.engine = "BLENDER_WORKBENCH"
    workbench = error_of(lambda: bpy.ops.dream.render_animation(exit_on_error=False))
    scene.render.engine = "CYCLES"
    fast_settings(scene)
    bpy.ops.render.render()  # F12 without the Cryptomatte pass
    existing = error_of(lambda: bpy.ops.dream.render_frame(use_existing=True, exit_on_error=False))
    for obj in scene.objects:
        obj.select_set(obj.name == "Sphere")
    bpy.context.view_layer.objects.active = bpy.data.objects["Sphere"]
    only = bpy.ops.dream.only_selected()
    selected = strengths.strength_params(scene)
    bpy.ops.dream.clear_strengths()
    return {"inherited": inherited, "workbench": workbench, "existing": existing, "only": sorted(only),
            "selected": selected, "cleared": strengths.strength_params(scene),
            "undo": "UNDO" in bpy.types.DREAM_OT_only_selected.bl_options}


def scenario_prepare_objects(workdir, zip_path):
    """A saved shot and the add-on enabled for a Blender with a window to open."""
    build_scene(workdir, frames=1)
    install(zip_path)
    bpy.context.preferences.view.show_splash = False
    bpy.ops.wm.save_userpref()
    bpy.ops.wm.save_mainfile()
    return {"blend": bpy.data.filepath}


if __name__ == "__main__":
    run_main(globals())
