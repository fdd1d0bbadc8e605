"""A small animated test scene built with bpy: a panning camera and objects
moving independently (and past each other, so there are occlusions).
Standard library only, so Blender 3.4's Python can run it."""
import math
import os

import bpy


def _material(name: str, colour, roughness=0.4):
    material = bpy.data.materials.new(name)
    material.diffuse_color = colour
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # always on from 5.0
    bsdf = material.node_tree.nodes.get("Principled BSDF")
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = colour
        bsdf.inputs["Roughness"].default_value = roughness
    return material


def empty_scene(frames: int, width: int, height: int, samples: int, sky=(0.3, 0.35, 0.4)):
    """A fresh file's scene: Cycles at ``samples``, the size and frame range set, a plain sky."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False  # Debian's Blender has no OpenImageDenoise
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, frames
    world = bpy.data.worlds.new("World")
    world.color = sky
    scene.world = world
    return scene


def build_scene(path: str, frames: int = 3, width: int = 64, height: int = 48, samples: int = 4):
    """Builds the scene in a fresh file, saves it to ``path`` and returns it."""
    scene = empty_scene(frames, width, height, samples)

    bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 0, -1))
    bpy.context.active_object.data.materials.append(_material("floor", (0.8, 0.78, 0.7, 1), 0.8))
    movers = [
        (bpy.ops.mesh.primitive_cube_add, (0.8, 0.2, 0.1, 1), (-1.5, 0, 0), (1.2, 0, 0.3)),
        (bpy.ops.mesh.primitive_uv_sphere_add, (0.1, 0.4, 0.9, 1), (1.5, 0, 0), (-0.6, -0.5, 0.4)),
        (bpy.ops.mesh.primitive_torus_add, (0.9, 0.8, 0.2, 1), (0, 2, 0.5), (0.0, 0, 0)),
    ]
    for i, (make, colour, start, move) in enumerate(movers):
        make(location=start)
        obj = bpy.context.active_object
        obj.data.materials.append(_material(f"m{i}", colour))
        obj.keyframe_insert("location", frame=1)
        obj.keyframe_insert("rotation_euler", frame=1)
        obj.location = [a + b for a, b in zip(start, move)]
        obj.rotation_euler.z += math.radians(40 * (i + 1))
        obj.keyframe_insert("location", frame=frames)
        obj.keyframe_insert("rotation_euler", frame=frames)

    bpy.ops.object.light_add(type="SUN", location=(2, -2, 5))
    bpy.context.active_object.data.energy = 4
    bpy.ops.object.camera_add(location=(0, -11, 2.2), rotation=(math.radians(82), 0, 0))
    camera = bpy.context.active_object
    scene.camera = camera
    camera.keyframe_insert("location", frame=1)
    camera.location.x += 0.8
    camera.keyframe_insert("location", frame=frames)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=path)
    return scene


def render_exr_sequence(out_dir: str) -> None:
    """Renders the current scene's frame range as multilayer EXR with the Vector pass."""
    scene = bpy.context.scene
    scene.view_layers[0].use_pass_vector = True
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.color_depth = "32"
    scene.render.filepath = os.path.join(out_dir, "frame_####")
    bpy.ops.render.render(animation=True)


def exit_now(status: int) -> None:
    """Ends a bpy process at once: bpy as a module can hang at interpreter
    exit with threads around. Blender's session folder in the temporary
    directory, which only its own exit removes, is removed first."""
    import shutil

    shutil.rmtree(bpy.app.tempdir, ignore_errors=True)
    os._exit(status)
