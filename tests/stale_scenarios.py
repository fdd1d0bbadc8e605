"""Never stale, never silent: what a user does between runs (edit the
scene, render a scripted still, turn Overwrite off, delete a frame, lose the
server) and whether every frame written is of the scene as it is now. Run
inside real Blender like blender_scenarios.py (the bpy 5.0.1 module and
Debian's Blender 3.4); standard library only. Each scenario prints one
RESULT line; pixels are compared here with bpy (mix 0: a dream is Blender's
own frame) or by the test."""
import os
import shutil
import sys
import time

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib  # noqa: E402

from blender_scenarios import (  # noqa: E402
    _render_like_f12,
    build_scene,
    fast_settings,
    install,
    pixel_diff,
    run_main,
    set_output,
    visible,
)


def tiny(workdir, frames=3):
    """The demo's shot at 48x32, the dream at its cheapest, mix 0 (a dream is then Blender's own frame)."""
    scene = build_scene(workdir, frames=frames, width=48, height=32)
    module = install(sys.argv[-1] if sys.argv[-1].endswith(".zip") else os.environ["DREAM_TEST_ZIP"])
    fast_settings(scene)
    scene.dream.octaves, scene.dream.iterations, scene.dream.mix = 1, 2, 0.0
    scene.render.dither_intensity = 0.0  # Blender adds dither noise to 8-bit files otherwise
    return scene, module


def own_frame(scene, workdir: str, frame: int, name: str) -> str:
    """Blender's own render of ``frame`` as it writes it (Dream on Render off), as PNG."""
    on, scene.dream.on_render = scene.dream.on_render, False
    settings = scene.render.image_settings
    kept = settings.file_format, settings.color_depth
    settings.file_format, settings.color_depth = "PNG", "8"
    try:
        return _render_like_f12(scene, os.path.join(workdir, "own", f"{name}_{frame}_"), frame)
    finally:
        settings.file_format, settings.color_depth = kept
        scene.dream.on_render = on


def scenario_edits(workdir, _zip):
    """Dream Animation, then the scene edited (an object moved, a material's
    colour changed) between runs; a scripted still with Dream on Render
    before and after an edit."""
    scene, module = tiny(workdir)
    frames = os.path.join(workdir, "dream", "frames")
    result = {}
    bpy.ops.dream.render_animation()
    bpy.data.objects["Cube"].location.z += 0.6  # a user's edit
    bpy.ops.dream.render_animation()
    result["moved"] = [pixel_diff(own_frame(scene, workdir, f, "moved"), os.path.join(frames, f"Scene_0000{f}.png"))
                       ["max"] for f in (1, 2, 3)]
    material = bpy.data.materials["m1"]  # the sphere's
    material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.1, 0.9, 0.1, 1.0)
    bpy.ops.dream.render_animation()
    result["recoloured"] = [pixel_diff(own_frame(scene, workdir, f, "green"),
                                       os.path.join(frames, f"Scene_0000{f}.png"))["max"] for f in (1, 2, 3)]
    stamps = [os.stat(os.path.join(frames, f"Scene_0000{f}.png")).st_mtime_ns for f in (1, 2, 3)]
    bpy.ops.dream.render_animation()  # nothing changed: nothing rendered or dreamed again
    result["unchanged_kept"] = stamps == [os.stat(os.path.join(frames, f"Scene_0000{f}.png")).st_mtime_ns
                                          for f in (1, 2, 3)]
    # a script's still with Dream on Render: written where Blender writes stills (the pattern's literal name)
    scene.dream.on_render = True
    set_output(scene, "//stills/still_###", "png8")
    scene.frame_set(2)
    bpy.ops.render.render(write_still=True)
    still = os.path.join(workdir, "stills", "still_###.png")
    first = pixel_diff(own_frame(scene, workdir, 2, "still"), still)["max"] if os.path.exists(still) else None
    bpy.data.objects["Sphere"].location.x -= 0.8
    scene.frame_set(2)
    bpy.ops.render.render(write_still=True)
    result["stills"] = [first, pixel_diff(own_frame(scene, workdir, 2, "still_moved"), still)["max"]]
    result["stills_written"] = visible(os.path.join(workdir, "stills"))
    result["summary"] = importlib.import_module(f"{module}.on_render").last_summary
    return result


def scenario_overwrite_off(workdir, _zip):
    """Dream on Render with Overwrite off and Placeholders, as a farm shares a
    shot: an output frame deleted is rendered and dreamed again, the others
    are left alone; a frame whose file another machine has begun is skipped."""
    scene, module = tiny(workdir)
    scene.dream.on_render = True
    set_output(scene, "//out/shot_###", "png8")
    scene.render.use_overwrite = False
    scene.render.use_placeholder = True
    bpy.ops.render.render(animation=True)
    out = os.path.join(workdir, "out")
    first = visible(out)
    stamps = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in first}
    os.remove(os.path.join(out, "shot_002.png"))
    bpy.ops.render.render(animation=True)
    summary = importlib.import_module(f"{module}.on_render").last_summary
    again = visible(out)
    kept = {n: os.stat(os.path.join(out, n)).st_mtime_ns == stamps[n] for n in ("shot_001.png", "shot_003.png")}
    redone = pixel_diff(own_frame(scene, workdir, 2, "overwrite"), os.path.join(out, "shot_002.png"))["max"]
    bpy.data.objects["Cube"].location.z += 0.5  # the scene changes: the frames before 2 are not current
    os.remove(os.path.join(out, "shot_002.png"))
    bpy.ops.render.render(animation=True)  # Overwrite off: frame 2 alone is rendered, and written (never held)
    changed = pixel_diff(own_frame(scene, workdir, 2, "changed"), os.path.join(out, "shot_002.png"))["max"]
    os.remove(os.path.join(out, "shot_003.png"))
    open(os.path.join(out, "shot_003.png"), "wb").close()  # another machine's placeholder
    bpy.ops.render.render(animation=True)
    return {"first": first, "again": again, "kept": kept, "redone_max": redone, "summary": summary,
            "changed_max": changed,
            "placeholder_left_alone": os.path.getsize(os.path.join(out, "shot_003.png")) == 0,
            "user_settings": [scene.render.use_overwrite, scene.render.use_placeholder, scene.render.filepath]}


def scenario_server_killed(workdir, _zip):
    """Dream on Render at mix 1 with a server the add-on starts: the server is
    killed while frame 2 dreams. The render carries on, and every frame is
    the frame an uninterrupted render makes (``//fresh/``)."""
    scene, module = tiny(workdir, frames=4)
    scene.dream.mix = 1.0
    scene.dream.iterations = 2
    for frame, iterations in ((1, 2), (2, 300), (3, 2)):  # frame 2 is surely still dreaming when it is killed
        scene.dream.iterations = iterations
        scene.dream.keyframe_insert("iterations", frame=frame)
    scene.dream.on_render = True
    set_output(scene, "//out/shot_###", "png16")
    server_link = importlib.import_module(f"{module}.server_link")
    killed = []
    first_dream = os.path.join(workdir, "dream", "shown", "Scene_00001.png")

    def kill_while_frame_2_dreams():  # frame 1's dream is written: frame 2 (300 iterations) is dreaming
        while not os.path.exists(first_dream):
            time.sleep(0.01)
        process = server_link._LINK.process
        killed.append(process.pid)
        process.process.kill()

    import threading

    watcher = threading.Thread(target=kill_while_frame_2_dreams, daemon=True)
    watcher.start()
    bpy.ops.render.render(animation=True)
    watcher.join(timeout=1)
    summary = importlib.import_module(f"{module}.on_render").last_summary
    interrupted = visible(os.path.join(workdir, "out"))
    scene.dream.output_dir = "//fresh/"
    set_output(scene, "//fresh_out/shot_###", "png16")
    bpy.ops.render.render(animation=True)
    return {"killed": killed, "summary": summary, "files": interrupted,
            "diffs": [pixel_diff(os.path.join(workdir, "out", n), os.path.join(workdir, "fresh_out", n))["max"]
                      for n in interrupted]}


def scenario_two_writers(workdir, _zip):
    """Dream Animation started while a Dream on Render run is finishing: each
    has a colour helper of its own, so the one that ends first cannot take
    the other's away (it once ended the other with a ReferenceError and left
    the panel 'Dreaming' for good)."""
    scene, module = tiny(workdir, frames=2)
    colour = importlib.import_module(f"{module}.colour_management")
    finishing = colour.DisplayWriter(scene)  # as Dream on Render's
    runs = importlib.import_module(f"{module}.runs")
    scene_frames = importlib.import_module(f"{module}.scene_frames")
    preferences = importlib.import_module(f"{module}.preferences")
    run = runs.FrameRun(scene, scene_frames.animation_plan(scene, range(1, 3)), "test/two", preferences.configured_link(
        bpy.context), colour_managed=True)
    names = [finishing.name, run.display.name]
    finishing.close()  # the other run ends first
    deadline = time.time() + 300
    while not run.finished and time.time() < deadline:
        run.tick(wait=0.5)
    run.close()
    helpers = [s.name for s in bpy.data.scenes if s.name.startswith(colour.HELPER)]
    return {"names_differ": names[0] != names[1], "error": run.error, "done": run.done,
            "helpers_left": helpers, "running": bpy.context.window_manager.dream.running}


def scenario_all(workdir, zip_path):
    """Every scenario above in this one process, each in a folder of its own."""
    os.environ["DREAM_TEST_ZIP"] = zip_path
    results = {}
    for name in os.environ.get("DREAM_TEST_ONLY", "edits,overwrite_off,server_killed,two_writers").split(","):
        folder = os.path.join(workdir, name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        began = time.monotonic()
        results[name] = globals()[f"scenario_{name}"](folder, zip_path)
        print(f"STALE-TIME {name} {time.monotonic() - began:.1f}", flush=True)
    return results


if __name__ == "__main__":
    run_main(globals())
