"""Scenarios run inside real Blender: the bpy 5.0.1 module (``python
blender_scenarios.py NAME ...``) and Debian's Blender 3.4 (``blender -b
--factory-startup --python blender_scenarios.py -- NAME ...``). Standard
library only (Blender 3.4's Python has no numpy). Each prints one line
``RESULT {json}`` for the test to check."""
import contextlib
import importlib
import io
import json
import os
import shutil
import sys
import time

import bpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo"))
import scene as demo_scene  # noqa: E402  (the demo's scene, shared)

ADDON = "dream_renders"


def argv() -> list:
    args = sys.argv
    return args[args.index("--") + 1:] if "--" in args else args[1:]


def install(zip_path: str) -> str:
    """Installs and enables the zip as a user would; returns the module name."""
    if bpy.app.version >= (4, 2, 0):
        bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
        module = f"bl_ext.user_default.{ADDON}"
    else:
        bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
        bpy.ops.preferences.addon_enable(module=ADDON)
        module = ADDON
    assert module in bpy.context.preferences.addons, f"{module} not enabled"
    assert hasattr(bpy.ops.dream, "render_animation")
    return module


def visible(folder: str) -> list:
    """A folder's files as a user lists them (our cache manifest is a dotfile)."""
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def build_scene(workdir: str, frames: int = 3, width: int = 64, height: int = 48):
    return demo_scene.build_scene(os.path.join(workdir, "shot.blend"), frames, width, height)


def fast_settings(scene) -> None:
    d = scene.dream
    d.octaves, d.iterations, d.step, d.tile = 2, 3, 0.02, 0


def strip_report(scene, name: str) -> dict:
    sed = scene.sequence_editor
    strips = sed.strips_all if hasattr(sed, "strips_all") else sed.sequences_all
    found = [s for s in strips if s.name == name]
    if not found:
        return {}
    s = found[0]
    return {"name": s.name, "channel": s.channel, "frame_start": int(s.frame_start),
            "frames": len(s.elements), "directory": bpy.path.abspath(s.directory), "stored_directory": s.directory,
            "count_same_name": len(found)}


def pixel_diff(a: str, b: str) -> dict:
    """Mean and largest |a - b| of two image files via bpy (no numpy in
    Blender 3.4), the mean of b - a (a bias), and the share of values
    within a tenth of an 8-bit level; pictures of different sizes: mean -1,
    max 1, so that any check for "same" or for "differs" fails."""
    pa, pb = list(bpy.data.images.load(a).pixels), list(bpy.data.images.load(b).pixels)
    if len(pa) != len(pb):
        return {"mean": -1.0, "max": 1.0, "bias": 1.0, "same": 0.0}
    signed = [y - x for x, y in zip(pa, pb)]
    diffs = [abs(d) for d in signed]
    return {"mean": sum(diffs) / len(diffs), "max": max(diffs), "bias": sum(signed) / len(signed),
            "same": sum(d < 0.1 / 255 for d in diffs) / len(diffs)}


def error_of(call):
    """What an operator's failure says (bpy raises RuntimeError), or None when it succeeds."""
    try:
        call()
    except RuntimeError as err:
        return str(err)
    return None


def png_image_chunks(path: str) -> bytes:
    """A PNG's header and pixel chunks, without its text: two dreams of the
    same frame are the same image, though the render's stamp (Date,
    RenderTime) they carry differs from run to run."""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    kept, at = [], 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind in (b"IHDR", b"PLTE", b"tRNS", b"IDAT"):
            kept.append(data[at:at + 12 + length])
        at += 12 + length
    return b"".join(kept)


def mean_abs_diff(a: str, b: str) -> float:
    return pixel_diff(a, b)["mean"]


def scenario_animation(workdir, zip_path):
    scene = build_scene(workdir)
    install(zip_path)
    fast_settings(scene)
    scene.dream.keyframe_insert("mix", frame=1)  # animatable: fades from 1.0 to 0.0
    scene.dream.mix = 0.0
    scene.dream.keyframe_insert("mix", frame=3)
    scene.dream.layer_index = 2  # and deeper layers over the shot: an index the server resolves per model
    scene.dream.keyframe_insert("layer_index", frame=1)
    scene.dream.layer_index = 8
    scene.dream.keyframe_insert("layer_index", frame=3)
    scene.frame_set(2)
    bpy.ops.dream.render_animation()
    root = os.path.join(workdir, "dream")
    renders = visible(os.path.join(root, "renders"))
    dreamed = visible(os.path.join(root, "frames"))
    src = os.path.join(root, "renders", renders[0])
    frame_after = scene.frame_current
    bpy.ops.wm.save_mainfile()
    f12 = _render_like_f12(scene, os.path.join(workdir, "f12_"))
    own_3 = _render_like_f12(scene, os.path.join(workdir, "f12_3_"), frame=3)
    edit = bpy.data.scenes.get(f"{scene.name} Dream")
    return {"renders": renders, "dreamed": dreamed, "strip": strip_report(edit, f"Dream {scene.name}") if edit else {},
            "strips_in_rendered_scene": len(compat_all_strips(scene)),
            "f12_vs_dream": mean_abs_diff(f12, os.path.join(root, "frames", dreamed[0])),
            "faded_vs_own": mean_abs_diff(own_3, os.path.join(root, "frames", dreamed[2])),
            "frame_after": frame_after,
            "user_output_kept": scene.render.image_settings.file_format,
            "layer_index_sent": [_params_at(scene, f).get("layer_index") for f in (1, 2, 3)],
            "render_is_multilayer": open(src, "rb").read(4) == b"\x76\x2f\x31\x01"}


def scenario_colour(workdir, zip_path):
    """At mix 0 a dreamed frame is the render as Blender itself writes it:
    the scene's view transform (Filmic in 3.4, AgX in 5.0) applied once,
    whether the dream acts on the image as shown (the default) or on the
    render's light."""
    scene = build_scene(workdir, frames=2)
    install(zip_path)
    fast_settings(scene)
    scene.dream.mix = 0.0
    scene.render.dither_intensity = 0.0  # Blender's own output adds dither noise otherwise
    own = _render_like_f12(scene, os.path.join(workdir, "blender_own_"))
    result = {"view_transform": scene.view_settings.view_transform}
    for space, folder in (("SHOWN", "shown"), ("LINEAR", "linear")):
        scene.dream.colour_space, scene.dream.output_dir = space, f"//{space}/"
        bpy.ops.dream.render_animation()
        frames = os.path.join(workdir, space, "frames")
        result[space] = {**pixel_diff(own, os.path.join(frames, "Scene_00001.png")),
                         "kept": visible(os.path.join(workdir, space, folder)),
                         "hidden_in_frames": [n for n in os.listdir(frames) if n.startswith(".")]}
    scene.render.dither_intensity = 1.0  # Blender's default: its own 8-bit file is dithered, and so is ours
    own_dithered = _render_like_f12(scene, os.path.join(workdir, "blender_dithered_"))
    scene.dream.colour_space, scene.dream.output_dir = "SHOWN", "//SHOWN_dither/"
    bpy.ops.dream.render_animation()
    result["dithered"] = pixel_diff(own_dithered, os.path.join(workdir, "SHOWN_dither", "frames", "Scene_00001.png"))
    scene.render.dither_intensity = 0.0
    scene.dream.mix = 1.0  # and the dreams themselves, for the test to hold against the CLI's dream of own
    for space in ("SHOWN", "LINEAR"):
        scene.dream.colour_space, scene.dream.output_dir = space, f"//{space}_mix1/"
        bpy.ops.dream.render_animation()
    result["helper_left"] = _helpers()
    result["own"] = own
    result["params"] = scene.dream.to_params()
    return result


def _helpers() -> list:
    """The add-on's colour helper scenes left in the file."""
    return [s.name for s in bpy.data.scenes if s.name.startswith(".Dream Colour")]


def compat_all_strips(scene) -> list:
    sed = scene.sequence_editor
    if sed is None:
        return []
    return list(sed.strips_all if hasattr(sed, "strips_all") else sed.sequences_all)


def _render_like_f12(scene, path: str, frame: int = 1) -> str:
    """``frame`` rendered as F12 would (the sequencer on, as by default), written to ``path``."""
    scene.frame_set(frame)
    saved = scene.render.filepath
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True, scene=scene.name)
    scene.render.filepath = saved
    return path + ".png"


def _params_at(scene, frame: int) -> dict:
    scene.frame_set(frame)
    return scene.dream.to_params()


def scenario_rerun(workdir, zip_path):
    """Run twice: the second run skips everything and does not duplicate the strip."""
    scene = build_scene(workdir, frames=2)
    install(zip_path)
    fast_settings(scene)
    bpy.ops.dream.render_animation()
    first = os.path.getmtime(os.path.join(workdir, "dream", "frames", "Scene_00001.png"))
    bpy.ops.dream.render_animation()
    second = os.path.getmtime(os.path.join(workdir, "dream", "frames", "Scene_00001.png"))
    render = os.path.join(workdir, "dream", "renders", "Scene_00001.exr")
    rendered = os.stat(render).st_mtime_ns
    statuses = []
    for change in ("scene.render.dither_intensity = 0.5",  # how 8-bit files are rounded: dreamed, not rendered
                   "scene.dream.colour_space = 'LINEAR'",
                   "scene.view_settings.exposure = 0.5"):  # Scene Linear: the dreams written again as they are
        exec(change, {"scene": scene})
        bpy.ops.dream.render_animation()
        statuses.append(bpy.context.window_manager.dream.status)
    not_rendered = os.stat(render).st_mtime_ns == rendered
    # on the range's last frame: what the run itself changes (frames evaluated and rendered, the helper scene
    # that writes the dreams, images loaded and removed) once counted as an edit, and every run rendered again
    scene.frame_set(2)
    bpy.ops.dream.render_animation()
    at_last = os.stat(render).st_mtime_ns
    bpy.ops.dream.render_animation()
    not_rendered_at_last_frame = os.stat(render).st_mtime_ns == at_last
    strip = strip_report(bpy.data.scenes["Scene Dream"], "Dream Scene")
    # saved, and opened again (a new session, as tomorrow's or a farm's): the renders are of that file
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=bpy.data.filepath)
    bpy.ops.dream.render_animation()
    return {"unchanged": first == second, "strip": strip, "statuses": statuses, "not_rendered": not_rendered,
            "not_rendered_at_last_frame": not_rendered_at_last_frame,
            "not_rendered_after_save_and_open": os.stat(render).st_mtime_ns == at_last,
            "status_after_open": bpy.context.window_manager.dream.status}


def scenario_changed_settings(workdir, zip_path):
    """Frames are reused only with the settings they were dreamed with."""
    scene = build_scene(workdir, frames=3)
    install(zip_path)
    fast_settings(scene)
    frames = os.path.join(workdir, "dream", "frames")

    def stamps():
        return [os.stat(os.path.join(frames, f"Scene_{n:05d}.png")).st_mtime_ns for n in (1, 2, 3)]

    bpy.ops.dream.render_animation()
    first = stamps()
    bpy.ops.dream.render_animation()
    same = stamps()
    scene.dream.keyframe_insert("mix", frame=1)  # only frame 3's mix changes: 1.0 -> 0.5
    scene.dream.mix = 0.5
    scene.dream.keyframe_insert("mix", frame=3)
    for curve in _fcurves(scene):
        for point in curve.keyframe_points:
            point.interpolation = "CONSTANT"
    bpy.ops.dream.render_animation()
    keyed = stamps()
    scene.dream.iterations += 1  # every frame changes
    bpy.ops.dream.render_animation()
    all_new = stamps()
    bpy.ops.dream.render_animation(redream=True)
    forced = stamps()
    return {"rerun_kept": [a == b for a, b in zip(first, same)],
            "keyframe_redreamed": [a != b for a, b in zip(same, keyed)],
            "setting_redreamed": [a != b for a, b in zip(keyed, all_new)],
            "redream_redreamed": [a != b for a, b in zip(all_new, forced)]}


def _fcurves(scene):
    action = scene.animation_data.action
    if hasattr(action, "fcurves"):
        return list(action.fcurves)
    return [c for layer in action.layers for strip in layer.strips for bag in strip.channelbags for c in bag.fcurves]


def _make_sequence(folder: str, count: int) -> list:
    os.makedirs(folder, exist_ok=True)
    names = []
    for n in range(count):
        img = bpy.data.images.new(f"seq{n}", 64, 48)
        px = []
        for y in range(48):
            for x in range(64):
                px += [((x + 3 * n) % 64) / 64, y / 48, 0.5, 1.0]
        img.pixels = px
        name = f"lux_{n + 1:04d}.png"
        img.filepath_raw = os.path.join(folder, name)
        img.file_format = "PNG"
        img.save()
        names.append(name)
    return names


def _strip_scene(workdir, zip_path, frames: int = 3):
    """An edit scene with an image strip of ``frames`` rendered frames, selected."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(workdir, "edit.blend"))
    install(zip_path)
    fast_settings(scene)
    names = _make_sequence(os.path.join(workdir, "lux"), frames)
    scene.sequence_editor_create()
    sed = scene.sequence_editor
    strips = sed.strips if hasattr(sed, "strips") else sed.sequences
    strip = strips.new_image(name="lux", filepath=os.path.join(workdir, "lux", names[0]), channel=2,
                             frame_start=10)
    for name in names[1:]:
        strip.elements.append(name)
    sed.active_strip = strip
    return scene


def scenario_full_disk(workdir, zip_path):
    """Dreamed frames go to a nearly full disk: the run ends with one message naming it, no hang."""
    scene = _strip_scene(workdir, zip_path, frames=4)
    scene.dream.output_dir = os.environ["DREAM_TEST_OUTPUT"]
    message = error_of(lambda: bpy.ops.dream.process_strip(exit_on_error=False))
    written = visible(os.path.join(os.environ["DREAM_TEST_OUTPUT"], "strips", "lux"))
    return {"message": message, "written": written}


def scenario_strip(workdir, zip_path):
    scene = _strip_scene(workdir, zip_path)
    names = visible(os.path.join(workdir, "lux"))
    before = visible(os.path.join(workdir, "lux"))
    bpy.ops.dream.process_strip()
    return {"source": strip_report(scene, "lux"), "dreamed": strip_report(scene, "Dream lux"),
            "sources_untouched": visible(os.path.join(workdir, "lux")) == before,
            "diff": mean_abs_diff(os.path.join(workdir, "lux", names[0]),
                                  os.path.join(workdir, "dream", "strips", "lux", "lux_0001.png"))}


def _frame_run(module: str, scene):
    import importlib

    preferences = importlib.import_module(f"{module}.preferences")
    scene_frames = importlib.import_module(f"{module}.scene_frames")
    runs = importlib.import_module(f"{module}.runs")
    link = preferences.configured_link(bpy.context)
    frame_plans = scene_frames.animation_plan(scene, range(scene.frame_start, scene.frame_end + 1))
    return runs.FrameRun(scene, frame_plans, "test/job", link, colour_managed=True), link  # as Dream Animation


def scenario_cancel_resume(workdir, zip_path):
    """Cancelled while frame 2 dreams (keyframed to many iterations), then run
    again with frame 2 made quick: frame 1 is kept, the rest carry on from
    its exact state: the same frames as a fresh run in another folder."""
    scene = build_scene(workdir, frames=4)
    module = install(zip_path)
    fast_settings(scene)
    scene.dream.iterations = 3
    scene.dream.keyframe_insert("iterations", frame=1)
    scene.dream.iterations = 400
    scene.dream.keyframe_insert("iterations", frame=2)
    scene.dream.iterations = 3
    scene.dream.keyframe_insert("iterations", frame=3)
    _constant_keys(scene)
    run, _ = _frame_run(module, scene)
    while run.done < 1 and not run.finished:
        run.tick(wait=0.5)
    run.cancel()
    deadline = time.time() + 60
    run.worker.thread.join(max(0.0, deadline - time.time()))
    run.tick(wait=0.2)  # a cancelled run renders and sends nothing more
    frames_dir = os.path.join(workdir, "dream", "frames")
    after_cancel = visible(frames_dir)
    renders_after_cancel = visible(os.path.join(workdir, "dream", "renders"))
    first = os.stat(os.path.join(frames_dir, "Scene_00001.png")).st_mtime_ns
    scene.dream.iterations = 3  # frame 2 made quick
    scene.dream.keyframe_insert("iterations", frame=2)
    bpy.ops.dream.render_animation()
    resumed = {n: png_image_chunks(os.path.join(frames_dir, n)) for n in visible(frames_dir)}
    scene.dream.output_dir = "//fresh/"
    bpy.ops.dream.render_animation()
    fresh_dir = os.path.join(workdir, "fresh", "frames")
    return {"after_cancel": after_cancel, "error": run.error, "renders_after_cancel": renders_after_cancel,
            "first_kept": os.stat(os.path.join(frames_dir, "Scene_00001.png")).st_mtime_ns == first,
            "after_resume": sorted(resumed),
            "same_as_fresh": [resumed[n] == png_image_chunks(os.path.join(fresh_dir, n)) for n in sorted(resumed)],
            "strip": strip_report(bpy.data.scenes["Scene Dream"], "Dream Scene")}


def _constant_keys(scene) -> None:
    for curve in _fcurves(scene):
        for point in curve.keyframe_points:
            point.interpolation = "CONSTANT"


def scenario_kill_server(workdir, zip_path):
    """Spawn mode: the server dies while it dreams frame 2; the run restarts it
    and completes. Frame 2 is keyframed to many iterations so it is surely
    still dreaming when its first progress arrives, on any machine."""
    scene = build_scene(workdir, frames=3)
    module = install(zip_path)
    fast_settings(scene)
    for frame, iterations in ((1, 3), (2, 400), (3, 3)):
        scene.dream.iterations = iterations
        scene.dream.keyframe_insert("iterations", frame=frame)
    run, link = _frame_run(module, scene)
    killed_pid = None
    deadline = time.time() + 600
    while not run.finished and time.time() < deadline:
        run.tick(wait=0.5)
        if run.done == 1 and run.current_fraction > 0 and killed_pid is None:
            killed_pid = link.process.pid
            link.process.process.kill()
            link.process.process.wait()
    return {"done": run.done, "total": run.total, "error": run.error, "killed": killed_pid,
            "new_pid": link.process.pid if link.process else None,
            "frames": visible(os.path.join(workdir, "dream", "frames"))}


def scenario_connection_and_renamed_scene(workdir, zip_path):
    """Test Connection (blocking in background mode) lists the server's models;
    a run whose scene is renamed under it stops with one clear error."""
    scene = build_scene(workdir, frames=3)
    module = install(zip_path)
    fast_settings(scene)
    bpy.ops.dream.test_connection()
    runtime = bpy.context.window_manager.dream
    info, models = runtime.server_info, sorted(json.loads(runtime.server_layers))
    run, _ = _frame_run(module, scene)
    run.tick(wait=0.0)  # frame 1 rendered and sent
    scene.name = "Renamed"
    deadline = time.time() + 300
    while not run.finished and time.time() < deadline:
        run.tick(wait=0.5)
    return {"info": info, "models": models, "error": run.error, "paths": _paths_of_names(module, scene),
            "panel": _panel_settings(bpy.types.Scene.bl_rna.properties["dream"].fixed_type)}


def _panel_settings(rna) -> dict:
    """The scene properties' defaults and limits, as Blender registered them."""
    found = {}
    for prop in rna.properties:
        facts = {"default": getattr(prop, "default", None)}
        if prop.type in ("INT", "FLOAT"):
            facts.update(min=prop.hard_min, max=prop.hard_max, soft_min=prop.soft_min, soft_max=prop.soft_max)
        if prop.type == "ENUM":
            facts["items"] = sorted(item.identifier for item in prop.enum_items)
        found[prop.identifier] = facts
    return found


def _paths_of_names(module, scene) -> dict:
    """Where frames of scenes with awkward names go (names a user can type)."""
    from importlib import import_module

    scene_frames = import_module(f"{module}.scene_frames")  # install() gives the package name
    root = scene_frames.output_root(scene)
    names = ["../../escape", "a/b", "a_b", "ショット", "シーン", "Shot.001", "x" * 250, "x" * 249, "C:\\x", " "]
    paths = {}
    for name in names:
        scene.name = name
        paths[scene.name] = os.path.relpath(scene_frames.frame_file(scene, "frames", 1), root)
    return paths


def scenario_failure(workdir, zip_path):
    """No server reachable: a clear error, no frame files."""
    scene = build_scene(workdir, frames=2)
    install(zip_path)
    fast_settings(scene)
    message = error_of(lambda: bpy.ops.dream.render_animation(exit_on_error=False))
    renders = []
    bpy.app.handlers.render_init.append(lambda *_: renders.append(1))
    still = error_of(lambda: bpy.ops.dream.render_frame(exit_on_error=False))  # sure to dream: said before rendering
    still_status, still_renders = bpy.context.window_manager.dream.status, len(renders)
    camera, scene.camera = scene.camera, None  # a render Blender refuses: its reason, as the frame's
    no_camera = error_of(lambda: bpy.ops.dream.render_animation(exit_on_error=False, rerender=True))
    scene.camera = camera
    frames_dir = os.path.join(workdir, "dream", "frames")
    return {"message": message, "frames": visible(frames_dir) if os.path.isdir(frames_dir) else [],
            "still": still, "still_status": still_status, "still_renders": still_renders, "no_camera": no_camera}


def scenario_prepare_headless(workdir, zip_path):
    """A saved shot and preferences with the add-on enabled, for a plain
    ``blender -b shot.blend --python-expr ...`` run."""
    scene = build_scene(workdir, frames=2)
    install(zip_path)
    fast_settings(scene)
    bpy.ops.wm.save_mainfile()
    bpy.context.preferences.view.show_splash = False
    bpy.ops.wm.save_userpref()
    return {"blend": os.path.join(workdir, "shot.blend")}


def scenario_cli_command(workdir, zip_path):
    """The ``blender -c dream`` command's function (Blender 4.2+)."""
    import importlib

    scene = build_scene(workdir, frames=3)
    module = install(zip_path)
    fast_settings(scene)
    bpy.ops.wm.save_mainfile()
    command = importlib.import_module(f"{module}.cli_command")
    bad = command.run(["--frames", "x-y"])
    over = command.run(["--frames", "2-3", "--iterations", "5000"])  # Blender would clamp it: refused instead
    good = command.run(["--frames", "2-3", "--iterations", "2", "--mix", "0.5", "--no-keep-colors"])
    return {"bad": bad, "over": over, "good": good, "frames": visible(os.path.join(workdir, "dream", "frames")),
            "iterations": scene.dream.iterations, "mix": scene.dream.mix, "registered": command._handle is not None}


def scenario_render_frame(workdir, zip_path):
    """Dream Frame: render the current frame, then dream the existing Render Result."""
    scene = build_scene(workdir, frames=3)
    install(zip_path)
    fast_settings(scene)
    scene.frame_set(2)
    bpy.ops.dream.render_frame()
    image = bpy.data.images.get("Dream Result")
    first = {"image": image is not None and tuple(image.size), "file": bpy.path.abspath(image.filepath)}
    said = io.StringIO()
    with contextlib.redirect_stdout(said):  # again: a still is rendered anew, without a word on why
        bpy.ops.dream.render_frame()
    again_said = [line for line in said.getvalue().splitlines() if "rendering it again" in line]
    bpy.ops.render.render()
    bpy.ops.dream.render_frame(use_existing=True)
    files = visible(os.path.join(workdir, "dream", "frames"))
    return {"first": first, "files": files, "exists": os.path.exists(first["file"]), "again_said": again_said}


OUTPUT_FORMATS = {  # name: (media type (5.0), file format, colour depth, extension)
    "png8": ("IMAGE", "PNG", "8", ".png"), "png16": ("IMAGE", "PNG", "16", ".png"),
    "jpeg": ("IMAGE", "JPEG", "8", ".jpg"), "tiff16": ("IMAGE", "TIFF", "16", ".tif"),
    "exr_half": ("IMAGE", "OPEN_EXR", "16", ".exr"), "exr_float": ("IMAGE", "OPEN_EXR", "32", ".exr"),
    "movie": ("VIDEO", "FFMPEG", "8", ""),
}


def set_output(scene, path: str, name: str) -> None:
    media, fmt, depth, _ = OUTPUT_FORMATS[name]
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = media
    settings.file_format = fmt
    if fmt != "FFMPEG":
        settings.color_depth = depth
    scene.render.filepath = path


def output_report(scene) -> dict:
    settings = scene.render.image_settings
    return {"filepath": scene.render.filepath, "format": settings.file_format, "depth": settings.color_depth,
            "extension": scene.render.use_file_extension,
            "vector": [layer.use_pass_vector for layer in scene.view_layers]}


def image_facts(path: str) -> dict:
    image = bpy.data.images.load(path, check_existing=False)
    return {"format": image.file_format, "float": image.is_float, "size": list(image.size),
            "depth": image.depth}


def prepare_on_render(workdir, zip_path, output_format: str):
    """A saved shot with Dream on Render on, writing ``//out/shot_###`` in
    ``output_format``; and the same frames as Blender writes them without
    the add-on (``own/``). Frame 1 is dreamed at mix 0 (equal to Blender's
    own frame), frame 3 at mix 1."""
    scene = build_scene(workdir, frames=3)
    module = install(zip_path)
    fast_settings(scene)
    # 8-bit PNG in Blender 4+: dithered as Blender dithers its own, pixel for pixel; else compared without the
    # noise (Blender 3's pattern is matched in distribution only: scenario_colour checks it)
    scene.render.dither_intensity = 1.0 if output_format == "png8" and bpy.app.version >= (4, 0, 0) else 0.0
    set_output(scene, "//own/shot_###", output_format)
    if output_format != "movie":
        bpy.ops.render.render(animation=True)
    scene.dream.mix = 0.0
    scene.dream.keyframe_insert("mix", frame=1)
    scene.dream.mix = 1.0
    scene.dream.keyframe_insert("mix", frame=3)
    scene.dream.on_render = True
    scene.dream.seam_fade = int(os.environ.get("DREAM_TEST_FADE", "0"))
    set_output(scene, "//out/shot_###", output_format)
    bpy.ops.wm.save_mainfile()
    if bpy.app.version < (4, 2, 0):
        bpy.context.preferences.view.show_splash = False
        bpy.ops.wm.save_userpref()  # the add-on stays enabled for the Blender runs that follow
    return scene, module


def scenario_prepare_on_render(workdir, zip_path):
    scene, _ = prepare_on_render(workdir, zip_path, os.environ.get("DREAM_TEST_FORMAT", "png8"))
    return {"blend": bpy.data.filepath, "before": output_report(scene)}


def scenario_on_render(workdir, zip_path):
    """Dream on Render with Blender's own animation render, in one output format."""
    output_format = os.environ.get("DREAM_TEST_FORMAT", "png8")
    scene, module = prepare_on_render(workdir, zip_path, output_format)
    before = output_report(scene)
    bpy.ops.render.render(animation=True)
    import importlib

    summary = importlib.import_module(f"{module}.on_render").last_summary
    ext = OUTPUT_FORMATS[output_format][3]
    out = os.path.join(workdir, "out")
    files = visible(out) if os.path.isdir(out) else []
    result = {"before": before, "after": output_report(scene), "summary": summary, "files": files,
              "renders": visible(os.path.join(workdir, "dream", "renders")),
              "kept": visible(os.path.join(workdir, "dream", "linear" if output_format.startswith("exr") else "shown")),
              "helper_left": _helpers()}
    bpy.ops.wm.save_mainfile()  # a file saved after the render keeps no helper scene
    result["helper_saved"] = _helpers()
    if files == [f"shot_00{i}{ext}" for i in (1, 2, 3)]:
        result["modes"] = sorted({os.stat(os.path.join(folder, name)).st_mode & 0o777
                                  for folder, names in ((out, files), (os.path.join(workdir, "dream", "linear"
                                                                       if output_format.startswith("exr") else "shown"),
                                                                       result["kept"])) for name in names})
        result["facts"] = image_facts(os.path.join(out, files[0]))
        own = [os.path.join(workdir, "own", f) for f in files]
        result["mix0"] = pixel_diff(own[0], os.path.join(out, files[0]))
        result["mix1"] = pixel_diff(own[2], os.path.join(out, files[2]))
    return result


def scenario_renders_in_a_row(workdir, zip_path):
    """A script renders the animation three times with Dream on Render on:
    the colour helper scenes of the jobs before are gone."""
    scene, module = prepare_on_render(workdir, zip_path, "png8")
    on_render = importlib.import_module(f"{module}.on_render")
    counts = []
    for _ in range(3):
        bpy.ops.render.render(animation=True)
        counts.append(len(_helpers()))
    result = {"helpers": counts, "summary": on_render.last_summary,
              "scenes": sorted(s.name for s in bpy.data.scenes if not s.name.startswith(".Dream"))}
    # Frame Step 0 (Blender allows it): Blender renders the first frame only, and the add-on dreams just that
    out = os.path.join(workdir, "out")
    shutil.rmtree(out)
    scene.frame_step = 0
    bpy.ops.render.render(animation=True)
    return {**result, "step_0": {"summary": on_render.last_summary, "files": visible(out)}}


def scenario_refused_movie(workdir, zip_path):
    """A script renders an animation to a movie with Dream on Render on (bpy
    5.0: the render goes on): the job is refused and writes nothing where
    the user looks; the scene's output is as it was."""
    import tempfile

    scene, module = prepare_on_render(workdir, zip_path, "movie")
    before = output_report(scene)
    refused_before = {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("dream_refused_")}
    bpy.ops.render.render(animation=True)
    summary = importlib.import_module(f"{module}.on_render").last_summary
    out = os.path.join(workdir, "out")
    refused_after = {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("dream_refused_")}
    return {"summary": summary, "out": visible(out) if os.path.isdir(out) else [],
            "before": before, "after": output_report(scene), "left": sorted(refused_after - refused_before)}


def scenario_farm_fade(workdir, zip_path):
    """Two farm chunks of a shot side by side, as a farm runs them, in this
    process, with the shot's Seam Fade of 1 and float EXR output: frames 2-3
    end first (frame 2 held for the seam), then frame 1 (it ends second and
    writes frame 2)."""
    os.environ["DREAM_TEST_FADE"] = "1"
    scene, module = prepare_on_render(workdir, zip_path, "exr_float")
    on_render = importlib.import_module(f"{module}.on_render")
    before = output_report(scene)
    waiting = []
    for start, end in ((2, 3), (1, 1)):
        scene.frame_start, scene.frame_end = start, end
        bpy.ops.render.render(animation=True)
        waiting.append(on_render.last_summary)
    files = visible(os.path.join(workdir, "out"))
    after = output_report(scene)
    return {"before": before, "after": after, "files": files, "summaries": waiting,
            "waiting_after_first": [2] if "frames 2-2 are dreamed and held for the seam" in waiting[0] else waiting[0]}


def scenario_render_existing(workdir, zip_path):
    """Dream Frame > Use Existing Render dreams the last render without
    rendering again; with no render yet it says so."""
    scene = build_scene(workdir)
    install(zip_path)
    fast_settings(scene)
    renders = []
    bpy.app.handlers.render_init.append(lambda *_: renders.append(1))
    missing = error_of(lambda: bpy.ops.dream.render_frame(use_existing=True, exit_on_error=False))
    missing_status = bpy.context.window_manager.dream.status  # the panel says it too
    bpy.ops.render.render()
    before = len(renders)
    bpy.ops.dream.render_frame(use_existing=True)
    dreamed = os.path.join(workdir, "dream", "frames", "Scene_00001_still.png")
    return {"missing": missing, "missing_status": missing_status, "renders_during": len(renders) - before,
            "dreamed": os.path.exists(dreamed), "output": output_report(scene)}


def scenario_truncated_render(workdir, zip_path):
    """A render cut short on disk (a full disk, a crash) is rendered again, not dreamed."""
    scene = build_scene(workdir)
    install(zip_path)
    fast_settings(scene)
    bpy.ops.dream.render_animation()
    render = os.path.join(workdir, "dream", "renders", "Scene_00002.exr")
    whole = os.path.getsize(render)
    with open(render, "r+b") as f:
        f.truncate(whole // 2)
    os.remove(os.path.join(workdir, "dream", "frames", "Scene_00002.png"))
    bpy.ops.dream.render_animation()
    return {"whole": whole, "after": os.path.getsize(render),
            "frames": visible(os.path.join(workdir, "dream", "frames"))}


def scenario_hash_in_output(workdir, zip_path):
    """A ``#`` in the Dream output folder is a character of its name, not frame padding."""
    scene = build_scene(workdir, frames=1)
    install(zip_path)
    fast_settings(scene)
    scene.dream.output_dir = "//take #2/"
    message = error_of(lambda: bpy.ops.dream.render_animation(exit_on_error=False))
    return {"message": message, "folders": visible(workdir),
            "frames": visible(os.path.join(workdir, "take #2", "frames"))}


def scenario_preset(workdir, zip_path):
    """The panel's Preset names the settings there are: Custom once one is changed by hand."""
    scene = build_scene(workdir, frames=1)
    install(zip_path)
    d = scene.dream
    seen = []
    d.preset = "SUBTLE"
    seen.append([d.preset, d.octaves, d.iterations])
    d.step = 0.004  # the preset's own value: still the preset
    seen.append(d.preset)
    d.octaves = 5
    seen.append(d.preset)
    d.preset = "DEEP"
    seen.append([d.preset, d.octaves, d.layer_index])
    d.layer_index = -1
    seen.append(d.preset)
    return {"seen": seen}


def scenario_smoke(workdir, zip_path):
    module = install(zip_path)

    bpy.ops.preferences.addon_disable(module=module)
    gone = not hasattr(bpy.types.Scene, "dream")
    bpy.ops.preferences.addon_enable(module=module)
    back = hasattr(bpy.types.Scene, "dream")
    return {"unregistered_cleanly": gone, "registered_again": back,
            "loaded_numpy_or_torch": [m for m in ("torch",) if m in sys.modules]}


def scenario_live_headless(workdir, zip_path):
    """Live Dream where there is no window (bpy 5.0.1, blender -b): it
    registers and unregisters cleanly and says why it cannot run."""
    module = install(zip_path)
    header = [f.__name__ for f in getattr(bpy.types.VIEW3D_HT_header.draw, "_draw_funcs", [])]
    found = {"operator": hasattr(bpy.ops.dream, "live_viewport"), "stats": hasattr(bpy.context.window_manager,
                                                                                  "dream_live"),
             "header": "draw_header_button" in header,
             "refused": error_of(lambda: bpy.ops.dream.live_viewport())}
    bpy.ops.preferences.addon_disable(module=module)
    header = [f.__name__ for f in getattr(bpy.types.VIEW3D_HT_header.draw, "_draw_funcs", [])]
    found["gone"] = not hasattr(bpy.types.WindowManager, "dream_live") and "draw_header_button" not in header
    bpy.ops.preferences.addon_enable(module=module)
    found["back"] = hasattr(bpy.context.window_manager, "dream_live")
    return found


def scenario_moving_cube(workdir, _zip):
    """Two frames of a cube moving right and up on a transparent film, with the
    Vector pass: the ground truth for the pass's sign and channel order."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 128, 96
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.frame_start, scene.frame_end = 1, 2
    bpy.ops.mesh.primitive_cube_add(location=(0, 0, 0))
    cube = bpy.context.active_object
    cube.keyframe_insert("location", frame=1)
    cube.location.x += 0.5
    cube.location.z += 0.5
    cube.keyframe_insert("location", frame=2)
    bpy.ops.object.camera_add(location=(0, -8, 0), rotation=(1.5708, 0, 0))
    scene.camera = bpy.context.active_object
    demo_scene.render_exr_sequence(workdir)
    return {"files": sorted(f for f in os.listdir(workdir) if f.endswith(".exr"))}


def scenario_batch(workdir, zip_path):
    """Several scenarios in this one process, one after another, as the JSON
    file named by DREAM_TEST_BATCH lists them: ``[{"key", "module",
    "scenario", "env"}]``, each in the folder ``workdir/KEY/work`` with its
    variables set (a null value unsets one) and the rest as they were. Each
    prints ``BATCH-BEGIN KEY``, what it prints, then ``BATCH-RESULT KEY
    {json}`` or its traceback and ``BATCH-ERROR KEY``; one that fails does
    not stop the others (tests/conftest.py: blender_batch)."""
    import traceback

    with open(os.environ["DREAM_TEST_BATCH"], encoding="utf-8") as f:
        plan = json.load(f)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    done = []
    for entry in plan:
        key = entry["key"]
        folder = os.path.join(workdir, key, "work")
        os.makedirs(folder)
        kept = dict(os.environ)
        for name, value in entry["env"].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        print(f"BATCH-BEGIN {key}", flush=True)
        began = time.monotonic()
        try:
            found = globals() if entry["module"] == "blender_scenarios" else \
                vars(importlib.import_module(entry["module"]))  # this file runs as __main__: not imported again
            result = found[f"scenario_{entry['scenario']}"](folder, zip_path)
            print(f"BATCH-RESULT {key} " + json.dumps(result), flush=True)
        except Exception:
            traceback.print_exc(file=sys.stdout)
            print(f"BATCH-ERROR {key}", flush=True)
        finally:
            os.environ.clear()
            os.environ.update(kept)
            print(f"BATCH-TIME {key} {time.monotonic() - began:.1f}", flush=True)
        done.append(key)
    return {"done": done}


def run_main(scenarios: dict) -> None:
    """Runs the scenario named on the command line from ``scenarios`` (a
    module's globals) and prints its RESULT line; any error exits 1."""
    try:
        name, workdir, zip_path = argv()[:3]
        result = scenarios[f"scenario_{name}"](workdir, zip_path)
        print("RESULT " + json.dumps(result), flush=True)
    except SystemExit:
        raise
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        demo_scene.exit_now(1)
    demo_scene.exit_now(0)


if __name__ == "__main__":
    run_main(globals())
