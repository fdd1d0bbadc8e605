"""Harder test shots for the temporal benchmark, built and rendered with bpy
(Cycles, multilayer EXR with the Vector pass). Textured surfaces, so a
dream has detail to keep and lose:

- ``pan``: 40 frames, the camera pans and dollies past near and far objects
  (parallax, disocclusions, content entering the frame), a box spins;
- ``occluder``: 24 frames, a static view that a large near object crosses fast;
- ``orbit``: 120 frames, a slow camera orbit around a textured sphere;
- ``push``: 40 frames, a slow push in on the orbit's objects, denoised (the
  carried pattern is magnified; the tuning set's one denoised shot, where
  the render itself barely changes from frame to frame);
- ``grain``: 24 frames, the camera cranes up past the orbit's objects, tilting
  down to keep them in view, at 4 samples, not denoised: the tuning set's
  render as noisy as the held-out ``noisy`` (whose per-pixel noise is much
  larger than the 16-sample shots'), in another scene and another motion, so
  that what a carried dream does on such a render is chosen here, not there.

Those five are the tuning set: the temporal constants were chosen on them.
The held-out set (``HELD_OUT``) is never used to choose a constant, only to
judge one chosen on the tuning set; its scenes, objects and motions differ,
and all but ``noisy`` are denoised (OpenImageDenoise), as a user's would be:

- ``turntable``: 120 frames, a very slow, low orbit (40 degrees) round a
  group of other objects (a head, a cone, a ring): where the scene barely
  moves, a carried pattern should barely change;
- ``dolly``: 40 frames, the camera moves straight in on a cluster of objects
  (the pattern carried is magnified frame by frame);
- ``noisy``: 32 frames, a sideways truck past near and far objects rendered
  at 4 samples without denoising (the render itself boils);
- ``focus``: 24 frames, a slow pan with a shallow depth of field;
- ``blur``: 24 frames, a fast pan and a spinning object with motion blur;
- ``wave``: 24 frames, a still camera on a rippling, deforming sheet.

The denoised shots render with their own samples (``samples_for``: 8;
``noisy`` and ``grain`` 4), whatever the benchmark asks for the tuning set's others.

    python benchmarks/shots.py SHOT OUT_DIR WIDTH HEIGHT SAMPLES [denoised]

``denoised`` renders the shot at SAMPLES denoised whatever its own samples
and denoising (a diagnostic: a noisy shot's scene and motion without the
noise, see benchmarks/strength_trace.py --clean).
"""
import math
import os
import sys

import bpy
import mathutils

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo"))
import scene as demo_scene  # noqa: E402  (the demo's EXR sequence render, shared)

TUNING = {"pan": 40, "occluder": 24, "orbit": 120, "push": 40, "grain": 24}
HELD_OUT = {"turntable": 120, "dolly": 40, "noisy": 32, "focus": 24, "blur": 24, "wave": 24}
FRAMES = {**TUNING, **HELD_OUT}
SETS = {"tuning": TUNING, "held-out": HELD_OUT}
DENOISED = ("push", "turntable", "dolly", "focus", "blur", "wave")  # rendered at 8 samples, denoised
OWN_SAMPLES = {"noisy": 4, "grain": 4}  # not denoised, whatever the benchmark's samples
DENOISED_SAMPLES = 8


def samples_for(shot: str, samples: int) -> int:
    """The samples a shot renders with: the benchmark's for the tuning set's noisy shots."""
    if shot in DENOISED:
        return DENOISED_SAMPLES
    return OWN_SAMPLES.get(shot, samples)


def textured(name: str, colour, scale: float):
    """A material with procedural texture: noise over a checker, some bumps."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = nodes["Principled BSDF"]
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = scale
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = scale / 3
    checker.inputs["Color1"].default_value = colour
    checker.inputs["Color2"].default_value = [c * 0.45 for c in colour[:3]] + [1]
    mix = nodes.new("ShaderNodeMixRGB")
    mix.inputs["Fac"].default_value = 0.35
    links.new(checker.outputs["Color"], mix.inputs["Color1"])
    links.new(noise.outputs["Color"], mix.inputs["Color2"])
    links.new(mix.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.6
    return material


def add(make, material, **kwargs):
    make(**kwargs)
    obj = bpy.context.active_object
    obj.data.materials.append(material)
    return obj


def key(obj, frame: int, **values) -> None:
    for attr, value in values.items():
        setattr(obj, attr, value)
        obj.keyframe_insert(attr, frame=frame)


def linear(obj) -> None:
    """Constant speed: the motion of the shot, not an ease in and out."""
    action = obj.animation_data.action
    curves = action.fcurves if hasattr(action, "fcurves") else [
        c for layer in action.layers for strip in layer.strips for bag in strip.channelbags for c in bag.fcurves]
    for curve in curves:
        for point in curve.keyframe_points:
            point.interpolation = "LINEAR"


def base_scene(frames: int, width: int, height: int, samples: int):
    scene = demo_scene.empty_scene(frames, width, height, samples, sky=(0.25, 0.3, 0.38))
    add(bpy.ops.mesh.primitive_plane_add, textured("floor", (0.75, 0.7, 0.6, 1), 14), size=60, location=(0, 0, -1))
    add(bpy.ops.mesh.primitive_plane_add, textured("wall", (0.5, 0.6, 0.75, 1), 10), size=60,
        location=(0, 12, 5), rotation=(math.radians(90), 0, 0))
    bpy.ops.object.light_add(type="SUN", location=(3, -3, 6), rotation=(math.radians(40), math.radians(20), 0))
    bpy.context.active_object.data.energy = 3.5
    bpy.ops.object.camera_add()
    scene.camera = bpy.context.active_object
    return scene


def shot_pan(frames, scene):
    camera = scene.camera
    add(bpy.ops.mesh.primitive_cylinder_add, textured("near", (0.8, 0.3, 0.2, 1), 8), radius=0.5, depth=4,
        location=(-1.2, -4, 0.5))
    add(bpy.ops.mesh.primitive_uv_sphere_add, textured("mid", (0.2, 0.6, 0.3, 1), 9), radius=1.3,
        location=(2.5, 2, 0.3))
    box = add(bpy.ops.mesh.primitive_cube_add, textured("box", (0.9, 0.8, 0.3, 1), 6), size=1.6,
              location=(-3, 4, 0))
    key(box, 1, rotation_euler=(0, 0, 0))
    key(box, frames, rotation_euler=(0.3, 0, math.radians(220)))
    key(camera, 1, location=(-5, -12, 1.6), rotation_euler=(math.radians(84), 0, math.radians(-18)))
    key(camera, frames, location=(4, -8, 1.8), rotation_euler=(math.radians(84), 0, math.radians(14)))
    for obj in (box, camera):
        linear(obj)


def shot_occluder(frames, scene):
    camera = scene.camera
    add(bpy.ops.mesh.primitive_uv_sphere_add, textured("ball", (0.3, 0.5, 0.85, 1), 9), radius=1.4,
        location=(0, 3, 0.4))
    add(bpy.ops.mesh.primitive_cube_add, textured("crate", (0.85, 0.6, 0.3, 1), 6), size=1.8, location=(-3, 5, 0))
    key(camera, 1, location=(0, -10, 1.5), rotation_euler=(math.radians(85), 0, 0))
    bar = add(bpy.ops.mesh.primitive_cube_add, textured("bar", (0.85, 0.25, 0.25, 1), 5), size=1,
              location=(-9, -4, 0.5))
    bar.scale = (1.2, 0.6, 4)
    key(bar, 1, location=(-9, -4, 0.5))
    key(bar, frames, location=(9, -4, 0.5))
    linear(bar)


def orbit_objects() -> None:
    """The orbit's textured sphere, block and ring (the push-in's too)."""
    add(bpy.ops.mesh.primitive_uv_sphere_add, textured("globe", (0.3, 0.6, 0.8, 1), 10), radius=1.8,
        location=(0, 0, 0.8), segments=64, ring_count=32)
    add(bpy.ops.mesh.primitive_cube_add, textured("block", (0.9, 0.7, 0.3, 1), 6), size=1.5, location=(3.5, 1, -0.2))
    add(bpy.ops.mesh.primitive_torus_add, textured("ring", (0.8, 0.3, 0.5, 1), 8), location=(-3, -1.5, 0))


def shot_orbit(frames, scene):
    camera = scene.camera
    orbit_objects()
    bpy.ops.object.empty_add(location=(0, 0, 0))
    pivot = bpy.context.active_object
    camera.parent = pivot
    camera.location, camera.rotation_euler = (0, -11, 3), (math.radians(78), 0, 0)
    key(pivot, 1, rotation_euler=(0, 0, 0))
    key(pivot, frames, rotation_euler=(0, 0, math.radians(75)))
    linear(pivot)


def shot_push(frames, scene):
    camera = scene.camera
    orbit_objects()
    aim(camera, 1, (1, -12, 2.5), (0.3, 0, 0.5))
    aim(camera, frames, (0.4, -6.5, 1.6), (0.3, 0, 0.5))
    linear(camera)


def shot_grain(frames, scene):
    camera = scene.camera
    orbit_objects()
    aim(camera, 1, (-2, -10, 0.6), (0.3, 0, 0.3))
    aim(camera, frames, (-1, -9, 4.5), (0.3, 0, 0.1))
    linear(camera)


def aim(camera, frame: int, location, target) -> None:
    """Keys the camera at ``location`` looking at ``target``."""
    direction = mathutils.Vector(target) - mathutils.Vector(location)
    key(camera, frame, location=location, rotation_euler=direction.to_track_quat("-Z", "Y").to_euler())


def shot_turntable(frames, scene):
    camera = scene.camera
    add(bpy.ops.mesh.primitive_monkey_add, textured("head", (0.7, 0.5, 0.35, 1), 12), size=2.2,
        location=(0, 0, 0.6), rotation=(0, 0, math.radians(20)))
    bpy.ops.object.shade_smooth()
    add(bpy.ops.mesh.primitive_cone_add, textured("cone", (0.35, 0.7, 0.45, 1), 9), radius1=1.0, depth=2.4,
        location=(2.6, 1.8, 0.2))
    add(bpy.ops.mesh.primitive_torus_add, textured("hoop", (0.55, 0.4, 0.8, 1), 7), location=(-2.8, 1.5, -0.4),
        rotation=(math.radians(70), 0, 0))
    bpy.ops.object.empty_add(location=(0, 0, 0))
    pivot = bpy.context.active_object
    camera.parent = pivot
    camera.location, camera.rotation_euler = (0, -8, 1.2), (math.radians(86), 0, 0)
    key(pivot, 1, rotation_euler=(0, 0, math.radians(-20)))
    key(pivot, frames, rotation_euler=(0, 0, math.radians(20)))
    linear(pivot)


def shot_dolly(frames, scene):
    camera = scene.camera
    add(bpy.ops.mesh.primitive_uv_sphere_add, textured("bulb", (0.85, 0.45, 0.3, 1), 11), radius=1.0,
        location=(0.4, 1, 0.1), segments=48, ring_count=24)
    add(bpy.ops.mesh.primitive_cube_add, textured("left", (0.3, 0.55, 0.8, 1), 7), size=1.4, location=(-2, 3, -0.3))
    add(bpy.ops.mesh.primitive_cylinder_add, textured("post", (0.6, 0.75, 0.3, 1), 8), radius=0.4, depth=3,
        location=(2.2, 4, 0.5))
    aim(camera, 1, (0, -9, 1.2), (0.2, 2, 0.4))
    aim(camera, frames, (0, -3.5, 0.8), (0.2, 2, 0.4))
    linear(camera)


def shot_noisy(frames, scene):
    camera = scene.camera
    add(bpy.ops.mesh.primitive_cube_add, textured("pillar", (0.8, 0.35, 0.3, 1), 6), size=0.8,
        location=(-0.5, -4, 0.2))
    add(bpy.ops.mesh.primitive_ico_sphere_add, textured("rock", (0.45, 0.6, 0.4, 1), 10), radius=1.2,
        subdivisions=3, location=(1.5, 2, 0.2))
    add(bpy.ops.mesh.primitive_cone_add, textured("spire", (0.75, 0.7, 0.35, 1), 8), radius1=0.8, depth=3,
        location=(-2.5, 5, 0.5))
    key(camera, 1, location=(-3, -10, 1.4), rotation_euler=(math.radians(86), 0, 0))
    key(camera, frames, location=(2, -10, 1.4), rotation_euler=(math.radians(86), 0, 0))
    linear(camera)


def shot_focus(frames, scene):
    camera = scene.camera
    add(bpy.ops.mesh.primitive_uv_sphere_add, textured("near", (0.8, 0.5, 0.3, 1), 10), radius=0.6,
        location=(-1, -5, 0))
    add(bpy.ops.mesh.primitive_monkey_add, textured("sharp", (0.4, 0.6, 0.8, 1), 12), size=1.6, location=(0.5, 0, 0.3))
    add(bpy.ops.mesh.primitive_cube_add, textured("far", (0.6, 0.8, 0.4, 1), 6), size=2, location=(3, 7, 0))
    camera.data.dof.use_dof = True
    camera.data.dof.focus_distance = 8.5
    camera.data.dof.aperture_fstop = 0.6
    key(camera, 1, location=(-1, -8.5, 1.0), rotation_euler=(math.radians(86), 0, math.radians(-6)))
    key(camera, frames, location=(1, -8.5, 1.0), rotation_euler=(math.radians(86), 0, math.radians(6)))
    linear(camera)


def shot_blur(frames, scene):
    camera = scene.camera
    scene.render.use_motion_blur = True
    fan = add(bpy.ops.mesh.primitive_cylinder_add, textured("fan", (0.85, 0.4, 0.5, 1), 7), radius=1.5, depth=0.3,
              location=(0, 1, 0.8), rotation=(math.radians(90), 0, 0))
    add(bpy.ops.mesh.primitive_cube_add, textured("stand", (0.5, 0.65, 0.8, 1), 6), size=1.2, location=(-2.5, 3, -0.4))
    key(fan, 1, rotation_euler=(math.radians(90), 0, 0))
    key(fan, frames, rotation_euler=(math.radians(90), math.radians(360), 0))
    key(camera, 1, location=(-4, -9, 1.2), rotation_euler=(math.radians(86), 0, math.radians(-15)))
    key(camera, frames, location=(4, -9, 1.2), rotation_euler=(math.radians(86), 0, math.radians(15)))
    for obj in (fan, camera):
        linear(obj)


def shot_wave(frames, scene):
    camera = scene.camera
    sheet = add(bpy.ops.mesh.primitive_grid_add, textured("sheet", (0.4, 0.7, 0.75, 1), 9), size=7,
                x_subdivisions=80, y_subdivisions=80, location=(0, 1.5, 0))
    bpy.ops.object.shade_smooth()
    wave = sheet.modifiers.new("wave", "WAVE")
    wave.height, wave.width, wave.speed, wave.narrowness = 0.35, 1.6, 0.12, 1.0
    add(bpy.ops.mesh.primitive_uv_sphere_add, textured("buoy", (0.85, 0.6, 0.3, 1), 9), radius=0.7,
        location=(1.8, 3.5, 0.7))
    key(camera, 1, location=(0, -6, 3.2), rotation_euler=(math.radians(64), 0, 0))


def main() -> None:
    shot, out_dir, width, height, samples = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    denoised = sys.argv[6:7] == ["denoised"]
    frames = FRAMES[shot]
    samples = samples if denoised else samples_for(shot, samples)
    scene = base_scene(frames, width, height, samples)
    scene.render.threads_mode, scene.render.threads = "FIXED", 1  # a shared machine: one core
    if shot in DENOISED or denoised:
        scene.cycles.use_denoising, scene.cycles.denoiser = True, "OPENIMAGEDENOISE"
    globals()[f"shot_{shot}"](frames, scene)
    os.makedirs(out_dir, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(out_dir, f"{shot}.blend"))
    demo_scene.render_exr_sequence(out_dir)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
