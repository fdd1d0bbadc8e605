"""The add-on in real Blender: the bpy 5.0.1 module and Debian's Blender 3.4
(``blender -b``), running the scenarios in blender_scenarios.py against a
real dream server."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import BLENDER, HAS_BPY, ROOT, RUNTIMES, SCENARIOS, run_scenario, stamp_of  # noqa: F401 (shared)

VIA_9 = {"DREAM_SERVER_ADDRESS": "127.0.0.1:9"}  # nothing listens there


@pytest.mark.blender
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_render_animation_into_the_sequencer(runtime, tmp_path, addon_zip, server, via_server):
    prepared = server.log_tail(100000).count("prepared lite0 for 64x48 frames")
    result, work, stdout = run_scenario(runtime, "animation", tmp_path, addon_zip, via_server)
    # told as the first frame started rendering: the server loaded and compiled for its size meanwhile
    assert server.log_tail(100000).count("prepared lite0 for 64x48 frames") == prepared + 1
    assert result["renders"] == ["Scene_00001.exr", "Scene_00002.exr", "Scene_00003.exr"]
    assert result["dreamed"] == ["Scene_00001.png", "Scene_00002.png", "Scene_00003.png"]
    assert result["render_is_multilayer"]
    assert result["user_output_kept"] == "PNG"  # the user's output settings came back
    assert result["layer_index_sent"] == [2, 5, 8]  # keyframed, evaluated per frame, sent as an index
    strip = result["strip"]
    assert strip["frames"] == 3 and strip["frame_start"] == 1 and strip["channel"] == 1
    # the strip went to a scene of its own: F12 on the shot still renders the 3D scene, not the dream
    assert result["strips_in_rendered_scene"] == 0
    assert result["f12_vs_dream"] > 0.02, result["f12_vs_dream"]
    assert result["frame_after"] == 2  # the frame the user was on
    assert strip["stored_directory"].startswith("//")  # relative: the project folder can move
    assert re.search(r"^Dream Renders: (Dreaming|Frame) .* \(\d of 3 done, \d+%\)$", stdout, re.M), stdout  # for logs
    from dream_core.io import read_image

    render = read_image(str(work / "dream" / "renders" / "Scene_00001.exr"))
    assert render.vectors is not None  # the Vector pass is there for temporal coherence
    # the mix was keyframed 1 -> 0: frame 1 is dreamed, frame 3 is hardly (against Blender's own output)
    assert result["faded_vs_own"] < 0.5 * result["f12_vs_dream"], result
    assert not [p for p in (work / "dream").rglob(".dream-*")]


@pytest.mark.blender
@pytest.mark.blender_batch("strip")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_process_strip_places_dream_above(runtime, blender_batch):
    result, _, _ = blender_batch(runtime, "strip")
    assert result["sources_untouched"]
    source, dreamed = result["source"], result["dreamed"]
    assert dreamed["channel"] == source["channel"] + 1
    assert dreamed["frame_start"] == source["frame_start"] and dreamed["frames"] == source["frames"]
    assert result["diff"] > 0.005


@pytest.mark.blender
@pytest.mark.blender_batch("failure", env=VIA_9)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_server_missing_gives_a_clear_error_and_no_frames(runtime, blender_batch):
    result, _, _ = blender_batch(runtime, "failure")
    assert "cannot talk to the dream server at 127.0.0.1:9" in result["message"]
    assert result["frames"] == []
    # Dream Frame always dreams: a server that does not answer is said before anything renders
    assert "cannot talk to the dream server at 127.0.0.1:9" in result["still"] and result["still_renders"] == 0
    assert result["still_status"].startswith("Failed: cannot talk to the dream server at 127.0.0.1:9"), result
    assert "Dream Renders: Blender's render of frame 1 failed: " in result["no_camera"], result  # Blender's reason:
    assert "camera" in result["no_camera"].split("failed: ")[1], result  # "Cannot render, no camera" (3.4) and so on


@pytest.mark.blender
@pytest.mark.blender_batch("rerun", runtime="bpy")
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_rerun_skips_done_frames_and_keeps_one_strip(blender_batch):
    result, _, _ = blender_batch("bpy", "rerun")
    assert result["unchanged"]
    assert result["strip"]["count_same_name"] == 1 and result["strip"]["frames"] == 2
    assert result["statuses"] == ["Done: 2 frame(s) dreamed, 0 already current",
                                  "Done: 2 frame(s) dreamed, 0 already current",
                                  "Done: 0 frame(s) dreamed, 2 already current (2 written out from the kept "
                                  "dreams: a file missing or of other settings)"]
    assert result["not_rendered"]  # no setting of the render changed
    assert result["not_rendered_at_last_frame"]
    assert result["not_rendered_after_save_and_open"], result["status_after_open"]
    assert result["status_after_open"].startswith("Done: 0 frame(s) dreamed, 2 already current"), result


@pytest.mark.blender
@pytest.mark.blender_batch("colour")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_mix_0_dream_is_blenders_own_written_frame(runtime, blender_batch):
    result, work, _ = blender_batch(runtime, "colour")
    assert result["view_transform"] == ("Filmic" if runtime == "blender" else "AgX")
    assert result["helper_left"] == []
    for space, kept in (("SHOWN", ["Scene_00001.png", "Scene_00002.png"]),
                        ("LINEAR", ["Scene_00001.exr", "Scene_00002.exr"])):
        facts = result[space]
        assert facts["mean"] < 0.5 / 255 and facts["max"] <= 1.01 / 255, (space, facts)
        assert facts["hidden_in_frames"] == [] and facts["kept"] == kept, (space, facts)  # the dreams kept
    # with Blender's dither (intensity 1): 5.0's noise is Blender's own, pixel for pixel (a value rounds the
    # other way now and then: Blender dithers the float image, the server its 16-bit copy); 3.4's is its
    # distribution (its pattern follows how Blender split the image among threads): unbiased, within its noise
    dithered = result["dithered"]
    if runtime == "bpy":
        assert dithered["same"] >= 0.995 and dithered["max"] <= 1.01 / 255, dithered
    else:
        assert abs(dithered["bias"]) < 0.05 / 255 and dithered["max"] <= 2.01 / 255, dithered
    # at mix 1, As Shown dreams the frame Blender writes (within a level, at 16 bits), exactly as the command
    # line dreams an image; Scene Linear sends the render's light (docs/BENCHMARKS.md measures the strength)
    from dream_core import dream
    from dream_core.io import read_image

    shown = read_image(str(work / "SHOWN_mix1" / ".dream" / "shown_input" / "Scene_00001.png")).pixels[..., :3]
    own = read_image(result["own"]).pixels[..., :3]
    assert np.abs(shown - own).max() <= 1.01 / 255
    p = result["params"]
    expected = dream(shown, octaves=p["octaves"], iterations=p["iterations"], step=p["step"], seed=p["seed"],
                     octave_scale=p["octave_scale"], tile=0)
    reply = read_image(str(work / "SHOWN_mix1" / "shown" / "Scene_00001.png")).pixels[..., :3]
    assert np.abs(reply - expected).max() <= 1.01 / 65535
    written = read_image(str(work / "SHOWN_mix1" / "frames" / "Scene_00001.png")).pixels[..., :3]
    assert np.abs(written - reply).max() <= 1.01 / 255  # written as it is: no second view transform
    assert not (work / "LINEAR_mix1" / ".dream" / "shown_input").exists()
    # Blender's stamp as its own file has it, and nothing of ours; Blender's EXR reader adds the storage type
    # to what it reads from the Scene Linear dream (OpenEXR sets it on every header it reads)
    assert _same_stamp(stamp_of(work / "SHOWN" / "frames" / "Scene_00001.png"), stamp_of(result["own"]))
    linear = stamp_of(work / "LINEAR" / "frames" / "Scene_00001.png")
    assert linear.pop("type") == "scanlineimage" and _same_stamp(linear, stamp_of(result["own"]))


def _same_stamp(ours: dict, own: dict) -> bool:
    """The same fields, with the same values where the render does not say
    when or how long (the two files are of two renders of one frame)."""
    timed = {k for k in own if k in ("Date", "RenderTime") or k.endswith("_time")}
    assert set(ours) == set(own), (sorted(ours), sorted(own))
    assert {k: v for k, v in ours.items() if k not in timed} == {k: v for k, v in own.items() if k not in timed}
    return True


@pytest.mark.blender
@pytest.mark.blender_batch("changed_settings")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_changed_settings_are_dreamed_again(runtime, blender_batch):
    result, _, _ = blender_batch(runtime, "changed_settings")
    assert result["rerun_kept"] == [True, True, True]
    assert result["keyframe_redreamed"] == [False, False, True]  # the keyframed mix changed frame 3 only
    assert result["setting_redreamed"] == [True, True, True]
    assert result["redream_redreamed"] == [True, True, True]


@pytest.mark.blender
@pytest.mark.blender_batch("cancel_resume", runtime="bpy")
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_cancel_then_resume(blender_batch):
    result, _, _ = blender_batch("bpy", "cancel_resume")
    assert result["error"] is None
    assert result["after_cancel"] == ["Scene_00001.png"]
    assert len(result["renders_after_cancel"]) < 4  # nothing rendered after the cancel
    assert result["first_kept"]  # carried on from its kept state, not dreamed again
    assert len(result["after_resume"]) == 4 and result["strip"]["frames"] == 4
    assert result["same_as_fresh"] == [True] * 4  # the resumed shot is the uninterrupted one


@pytest.mark.blender
@pytest.mark.blender_batch("kill_server", runtime="bpy", env={  # the add-on starts a server of its own
    "DREAM_SERVER_PYTHON": sys.executable, "DREAM_SERVER_ADDRESS": None, "DREAM_SERVER_TOKEN_FILE": None})
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_server_killed_mid_run_is_restarted(blender_batch):
    result, _, _ = blender_batch("bpy", "kill_server")
    assert result["error"] is None, result["error"]
    assert result["killed"] and result["new_pid"] != result["killed"]
    assert result["frames"] == ["Scene_00001.png", "Scene_00002.png", "Scene_00003.png"]


@pytest.mark.blender
@pytest.mark.blender_batch("connection_and_renamed_scene", runtime="bpy")
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_connection_lists_models_and_a_renamed_scene_stops_the_run(blender_batch):
    result, _, _ = blender_batch("bpy", "connection_and_renamed_scene")
    assert result["info"].startswith("dream server") and "lite0" in result["info"]
    assert " on cpu (CPU: " in result["info"] and " GiB free" in result["info"], result["info"]  # the device
    assert result["models"] == ["googlenet", "lite0", "resnet50", "vgg16"]  # the server's list, not a copy
    assert "the scene 'Scene' is gone" in result["error"]
    paths = result["paths"]  # scenes named as users name them: each its own file, inside frames/
    assert len(set(paths.values())) == len(paths), paths
    assert all(os.path.dirname(p) == "frames" and not os.path.basename(p).startswith(".") for p in paths.values())
    assert paths["ショット"] == os.path.join("frames", "ショット_00001.png")  # any script reads as typed
    assert paths["Shot.001"] == os.path.join("frames", "Shot.001_00001.png")
    assert all(len(os.path.basename(p).encode()) < 255 for p in paths.values())
    from dream_core.shot.settings import SETTINGS, panel_range

    panel = result["panel"]  # the scene's properties are the settings table's, as Blender registered them
    for setting in SETTINGS:
        if not setting.offered_in("panel"):
            assert setting.name not in panel, setting.name
            continue
        facts = panel[setting.name]
        expected = setting.default_in("panel")
        assert facts["default"] == (pytest.approx(expected) if isinstance(expected, float) else expected), setting.name
        for key, value in panel_range(setting).items():
            assert facts[key] == pytest.approx(value), (setting.name, key)
        if setting.choices:
            assert facts["items"] == sorted(setting.choices)


@pytest.mark.blender
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_a_full_disk_ends_the_run_with_one_message(tmp_path, addon_zip, via_server):
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        result, _, _ = run_scenario("bpy", "full_disk", tmp_path, addon_zip, {**via_server,
                                                                              "DREAM_TEST_OUTPUT": str(disk)})
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert "the disk is full" in result["message"], result
    assert len(result["written"]) < 4 and not [n for n in result["written"] if n.startswith(".")]


@pytest.mark.blender
@pytest.mark.blender_batch("preset")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_preset_says_custom_once_a_setting_is_changed(runtime, blender_batch):
    result, _, _ = blender_batch(runtime, "preset")
    assert result["seen"] == [["SUBTLE", 3, 6], "SUBTLE", "CUSTOM", ["DEEP", 5, 12], "CUSTOM"]


@pytest.mark.blender
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_built_zip_alone_registers_and_unregisters(runtime, tmp_path, addon_zip):
    """Smoke test outside the checkout: only the zip, no dream_core on the path."""
    lone = tmp_path / "elsewhere"
    lone.mkdir()
    zip_copy = shutil.copy(addon_zip, lone)
    env = {"PYTHONPATH": ""}
    result, _, _ = run_scenario(runtime, "smoke", tmp_path, str(zip_copy), env, cwd=str(lone))
    assert result == {"unregistered_cleanly": True, "registered_again": True, "loaded_numpy_or_torch": []}


@pytest.mark.blender
@pytest.mark.blender_batch("prepare_headless", runtime="blender")
@pytest.mark.skipif(BLENDER is None, reason="Debian's blender not installed")
def test_headless_command_line_form(blender_batch, via_server):
    """blender -b shot.blend --python-expr "... render_animation()": progress
    lines and status 0; with no server, one clear error line and status 1."""
    result, work, _ = blender_batch("blender", "prepare_headless")
    user = blender_batch.user("blender")  # the add-on installed and enabled there
    env = {**os.environ, "BLENDER_USER_CONFIG": str(user / "config"), "BLENDER_USER_SCRIPTS": str(user / "scripts"),
           **via_server}
    expr = "import bpy; bpy.ops.dream.render_animation(); bpy.ops.wm.save_mainfile()"
    ok = subprocess.run([BLENDER, "-b", result["blend"], "--python-expr", expr], capture_output=True, text=True,
                        env=env, timeout=600)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    # progress lines (which frame each names depends on how fast the server dreams)
    assert re.search(r"^Dream Renders: (Dreaming|Frame) .*\(1 of 2 done, \d+%\)$", ok.stdout, re.M), ok.stdout[-2000:]
    assert sorted(p.name for p in (work / "dream" / "frames").glob("*.png")) == ["Scene_00001.png",
                                                                                "Scene_00002.png"]
    (work / "dream" / "frames" / "Scene_00002.png").unlink()  # its dream is kept: Blender writes it again
    still = "; bpy.ops.dream.render_frame()"  # and Dream Frame, which shows its dream only where a window can
    again = subprocess.run([BLENDER, "-b", result["blend"], "--python-expr", expr + still], capture_output=True,
                           text=True, env={**env, "DREAM_SERVER_ADDRESS": via_server["DREAM_SERVER_ADDRESS"]},
                           timeout=600)
    assert again.returncode == 0 and "0 frame(s) dreamed, 2 already current" in again.stdout, again.stdout[-2000:]
    assert "ERROR" not in again.stdout + again.stderr, again.stdout[-2000:] + again.stderr[-2000:]
    assert (work / "dream" / "frames" / "Scene_00002.png").exists()
    for made in (work / "dream" / "frames").glob("*_still.png"):
        made.unlink()
    for kind in ("frames", "shown"):  # now it must be dreamed again
        next((work / "dream" / kind).glob("Scene_00002.*")).unlink()
    env["DREAM_SERVER_ADDRESS"] = "127.0.0.1:9"
    bad = subprocess.run([BLENDER, "-b", result["blend"], "--python-expr", expr], capture_output=True, text=True,
                         env=env, timeout=600)
    assert bad.returncode == 1
    assert "Dream Renders: error: frame 2: cannot talk to the dream server at 127.0.0.1:9" in bad.stderr
    assert [p.name for p in (work / "dream" / "frames").iterdir()] == ["Scene_00001.png"]


@pytest.mark.blender
@pytest.mark.blender_batch("cli_command", runtime="bpy")
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_cli_command_for_farms(blender_batch):
    result, _, _ = blender_batch("bpy", "cli_command")
    assert result["registered"]
    assert result["bad"] == 2 and result["over"] == 2
    assert result["good"] == 0 and result["iterations"] == 2 and result["mix"] == 0.5
    assert result["frames"] == ["Scene_00002.png", "Scene_00003.png"]


@pytest.mark.blender
@pytest.mark.blender_batch("render_frame", runtime="bpy")
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_render_frame_shows_the_dream(blender_batch):
    result, _, _ = blender_batch("bpy", "render_frame")
    assert result["first"]["image"] == [64, 48]
    assert result["exists"] and result["files"] == ["Scene_00002_still.png"]
    assert result["again_said"] == []  # Dream Frame again renders anew, and says no reason that is not one


def _on_render(output_format: str):
    return pytest.param(output_format, marks=pytest.mark.blender_batch(
        f"on_render_{output_format}", scenario="on_render", runtime="bpy", env={"DREAM_TEST_FORMAT": output_format}))


@pytest.mark.blender
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
@pytest.mark.parametrize("output_format", [_on_render(f) for f in ("png8", "png16", "jpeg", "tiff16", "exr_half")])
def test_dream_on_render_writes_the_scenes_own_output(output_format, blender_batch):
    """Blender's own animation render with Dream on Render: dreamed frames at
    the scene's output path, in its format; the user's settings unchanged."""
    result, work, _ = blender_batch("bpy", f"on_render_{output_format}")
    ext = {"png8": ".png", "png16": ".png", "jpeg": ".jpg", "tiff16": ".tif", "exr_half": ".exr"}[output_format]
    assert result["files"] == [f"shot_00{i}{ext}" for i in (1, 2, 3)], result
    assert result["summary"] == "Dream on Render: 3 frame(s) dreamed"
    assert result["after"] == result["before"]  # what the user asked Blender to write is as it was
    assert result["renders"] == ["Scene_00001.exr", "Scene_00002.exr", "Scene_00003.exr"]  # raw, with vectors
    kept = "exr" if output_format == "exr_half" else "png"  # as shown, or carried back to scene light (EXR)
    assert result["kept"] == [f"Scene_0000{n}.{kept}" for n in (1, 2, 3)]
    assert not result["helper_saved"]
    umask = os.umask(0)
    os.umask(umask)
    assert result["modes"] == [0o666 & ~umask]  # dreamed and linear files readable as the umask allows
    facts = result["facts"]
    assert facts["size"] == [64, 48]
    assert facts["format"] == {"png8": "PNG", "png16": "PNG", "jpeg": "JPEG", "tiff16": "TIFF",
                               "exr_half": "OPEN_EXR"}[output_format]
    assert facts["float"] == (output_format in ("png16", "tiff16", "exr_half"))  # 16-bit files load as float
    tolerance = {"jpeg": 3 / 255, "exr_half": 2e-3}.get(output_format, 1.01 / 255)
    assert result["mix0"]["max"] <= tolerance, result  # frame 1 at mix 0: Blender's own frame
    if output_format == "png8":  # with Blender's own dither
        assert result["mix0"]["same"] >= 0.995, result
    out, own = stamp_of(work / "out" / result["files"][0]), stamp_of(work / "own" / result["files"][0])
    if output_format == "jpeg":  # Blender 5's PNG reader adds its reading hints; its JPEG writer writes them
        out = {k: v for k, v in out.items() if k != "oiio"}  # Blender:oiio:ColorSpace:sRGB and the alpha's
    assert _same_stamp(out, own)  # Blender's stamp (File, Date, Frame, Camera...) as its own file has it
    assert result["mix1"]["mean"] > 0.01, result  # frame 3 at mix 1: dreamed
    if output_format == "exr_half":
        import OpenEXR

        channels = OpenEXR.File(str(work / "out" / "shot_001.exr")).parts[0].channels
        assert {str(c.pixels.dtype) for c in channels.values()} == {"float16"}  # half, as the scene asks


def _pixels(path):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255


@pytest.mark.blender
@pytest.mark.blender_batch("prepare_farm_fade", scenario="prepare_on_render", runtime="blender",
                           env={"DREAM_TEST_FADE": "5"})
@pytest.mark.skipif(BLENDER is None, reason="Debian's blender not installed")
def test_dream_on_render_on_a_farm_command_line(tmp_path, blender_batch, via_server):
    """``blender -b shot.blend --addons dream_renders -s 1 -e 2 -a``, then
    ``-f 3`` as the next chunk: dreamed PNGs at the scene's output path; the
    chunk carries on from frame 2; Filmic applied once (mix 0 equals
    Blender's own frame). With the shot's Seam Fade on, a single frame (-f)
    is still written, whatever the state of the frames before it. Failures
    end Blender with status 1 and one line."""
    result, work, _ = blender_batch("blender", "prepare_farm_fade")
    user = blender_batch.user("blender")
    farm_config = tmp_path / "farm_config"  # a farm machine: the add-on installed, enabled by --addons only
    env = {**os.environ, "BLENDER_USER_CONFIG": str(farm_config), "BLENDER_USER_SCRIPTS": str(user / "scripts"),
           **via_server}

    def blender(*args, **extra):
        return subprocess.run([BLENDER, "-b", result["blend"], "--addons", "dream_renders", *args],
                              capture_output=True, text=True, env={**env, **extra}, timeout=600)

    first = blender("-s", "1", "-e", "2", "-a")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Dream Renders: Dream on Render: 2 frame(s) dreamed" in first.stdout
    out = work / "out"
    assert sorted(p.name for p in out.iterdir()) == ["shot_001.png", "shot_002.png"]
    chunk = blender("-f", "3")
    assert chunk.returncode == 0, chunk.stdout[-3000:] + chunk.stderr[-3000:]
    assert "frame 3 carries on from the dream of frame 2" in chunk.stdout
    assert sorted(p.name for p in out.iterdir()) == ["shot_001.png", "shot_002.png", "shot_003.png"]
    own = work / "own"
    assert abs(_pixels(own / "shot_001.png") - _pixels(out / "shot_001.png")).max() <= 1.01 / 255  # Filmic, once
    assert abs(_pixels(own / "shot_003.png") - _pixels(out / "shot_003.png")).mean() > 0.01  # mix 1: dreamed

    before, before_pixels = (out / "shot_003.png").read_bytes(), _pixels(out / "shot_003.png")
    again = blender("-f", "3", DREAM_SERVER_ADDRESS="127.0.0.1:9")  # its dream is current: no server needed
    assert again.returncode == 0 and "0 frame(s) dreamed, 1 already current" in again.stdout, again.stdout[-2000:]
    (work / "dream" / "shown" / "Scene_00003.png").unlink()  # now it must be dreamed: the server is missed
    lost = blender("-f", "3", DREAM_SERVER_ADDRESS="127.0.0.1:9")
    assert lost.returncode == 1
    errors = [line for line in lost.stderr.splitlines() if line.startswith("Dream Renders:")]
    assert len(errors) == 1 and "frame 3: cannot talk to the dream server at 127.0.0.1:9" in errors[0], errors
    assert (out / "shot_003.png").read_bytes() == before  # the last good frame is not overwritten

    moved = "import bpy; bpy.data.objects['Cube'].location.z += 0.5"  # the scene changed: frame 2 is not current
    alone = blender("--python-expr", moved, "-f", "3")
    assert alone.returncode == 0 and "Dream on Render: 1 frame(s) dreamed" in alone.stdout, alone.stdout[-2000:]
    assert abs(_pixels(out / "shot_003.png") - before_pixels).max() > 0  # written, not held for a seam

    movie = blender("--python-expr", "import bpy; bpy.context.scene.render.image_settings.file_format = 'FFMPEG'",
                    "-f", "1")
    assert movie.returncode == 1
    assert "Dream on Render writes image files, not movies" in movie.stderr
    assert sorted(p.name for p in out.iterdir()) == ["shot_001.png", "shot_002.png", "shot_003.png"]  # no movie


@pytest.mark.blender
@pytest.mark.skipif(BLENDER is None, reason="Debian's blender not installed")
def test_enabled_from_a_python_file_blender_exits_cleanly(tmp_path, addon_zip):
    """Farm job scripts enable the add-on from a ``--python`` FILE. Blender empties
    that file's ``__main__`` when the file ends; multiprocessing's ``__mp_main__``
    alias of it made Blender 3.4 segfault at exit (139, in addon_utils.disable_all)."""
    script = tmp_path / "enable.py"
    script.write_text("import addon_utils, bpy\n"
                      f"bpy.ops.preferences.addon_install(filepath={addon_zip!r}, overwrite=True)\n"
                      "addon_utils.enable('dream_renders', default_set=True)\n"
                      "assert 'dream_renders' in bpy.context.preferences.addons\n")
    env = {**os.environ, "BLENDER_USER_CONFIG": str(tmp_path / "config"),
           "BLENDER_USER_SCRIPTS": str(tmp_path / "scripts")}
    done = subprocess.run([BLENDER, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(script)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.blender
@pytest.mark.blender_batch("render_existing")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_dream_frame_uses_the_existing_render(runtime, blender_batch):
    result, _, _ = blender_batch(runtime, "render_existing")
    assert "there is no render to dream yet" in result["missing"], result
    assert result["missing_status"].startswith("Failed: there is no render to dream yet"), result
    assert result["renders_during"] == 0 and result["dreamed"]
    assert result["output"]["format"] == "PNG" and result["output"]["vector"] == [False]  # restored


@pytest.mark.blender
@pytest.mark.blender_batch("truncated_render")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_truncated_render_is_rendered_again(runtime, blender_batch):
    result, _, out = blender_batch(runtime, "truncated_render")
    assert "the render of frame 2 is incomplete; rendering it again" in out
    assert result["after"] == result["whole"]
    assert result["frames"] == ["Scene_00001.png", "Scene_00002.png", "Scene_00003.png"]


@pytest.mark.blender
@pytest.mark.blender_batch("hash_in_output", runtime="bpy")
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_a_hash_in_the_output_folder_is_part_of_its_name(blender_batch):
    result, _, _ = blender_batch("bpy", "hash_in_output")
    assert result["message"] is None
    assert result["folders"] == ["shot.blend", "take #2"]  # not "take 12" nor a folder per frame
    assert result["frames"] == ["Scene_00001.png"]


@pytest.mark.blender
@pytest.mark.blender_batch("refused_movie", runtime="bpy")
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_a_refused_render_writes_nothing_where_the_user_looks(blender_batch):
    result, _, _ = blender_batch("bpy", "refused_movie")
    assert result["summary"].startswith("Dream on Render failed: Dream on Render writes image files, not movies")
    assert result["summary"].endswith("the render writes nothing")
    assert result["out"] == []  # no undreamed movie
    assert result["after"] == result["before"] and result["left"] == []


@pytest.mark.blender
@pytest.mark.blender_batch("renders_in_a_row")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_renders_in_a_row_leave_no_helper_scenes_behind(runtime, blender_batch):
    result, _, _ = blender_batch(runtime, "renders_in_a_row")
    assert result["summary"].startswith("Dream on Render: 0 frame(s) dreamed, 3 already current"), result
    # the helpers a job leaves are taken again by the next: their number does not grow
    assert result["helpers"] == [2, 2, 2] and result["scenes"] == ["Scene"], result
    assert result["step_0"]["files"] == ["shot_001.png"], result["step_0"]
    assert result["step_0"]["summary"].startswith("Dream on Render: 0 frame(s) dreamed, 1 already current"), result
