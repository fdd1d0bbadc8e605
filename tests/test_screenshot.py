"""The add-on's panel drawn in a real Blender window (Debian's Blender 3.4
under Xvfb), saved as a screenshot."""
import os
import shutil
import subprocess

import pytest
from conftest import ROOT, run_in_window


@pytest.mark.blender
@pytest.mark.skipif(not (shutil.which("blender") and shutil.which("xvfb-run")), reason="needs blender and xvfb-run")
def test_panel_screenshot(tmp_path, addon_zip):
    built = addon_zip
    env = {**os.environ, "BLENDER_USER_CONFIG": str(tmp_path / "config"),
           "BLENDER_USER_SCRIPTS": str(tmp_path / "scripts")}
    # preferences without the first-run splash, as a user's would be
    subprocess.run(["blender", "-b", "--factory-startup", "--python-expr",
                    "import bpy; bpy.context.preferences.view.show_splash = False; bpy.ops.wm.save_userpref()"],
                   env=env, capture_output=True, timeout=120, check=True)
    out, without = tmp_path / "panel.png", tmp_path / "without.png"
    result = run_in_window(["blender", "--python", os.path.join(ROOT, "demo", "screenshot_panel.py"), "--", built,
                            str(out), str(without)], env, timeout=300, screen="1600x1000x24")
    assert out.exists() and without.exists(), result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr[-2000:]
    import numpy as np
    from PIL import Image

    shot = np.asarray(Image.open(out).convert("RGB"), np.int16)
    bare = np.asarray(Image.open(without).convert("RGB"), np.int16)
    assert shot.shape[1] > 800 and shot.shape[0] > 600
    assert len(np.unique(shot)) > 20  # drawn, not blank
    # the same area with the add-on disabled: our panel's rows are what differ
    assert shot.shape == bare.shape
    changed = (np.abs(shot - bare).max(axis=-1) > 24).mean()
    assert changed > 0.03, f"only {changed:.1%} of the area changed: the panel was not drawn"


@pytest.mark.blender
@pytest.mark.skipif(not (shutil.which("blender") and shutil.which("xvfb-run")), reason="needs blender and xvfb-run")
def test_dream_on_render_in_the_window(tmp_path, server, token_file, addon_zip):
    """As a user renders with a window open: Render Animation runs in
    Blender's render thread; dreamed frames still land at the output path
    and the settings come back, also while the window is busy drawing (as
    on a loaded machine, and while Blender refuses every Python write: a
    flag two threads left stuck). F12 then dreams the still and shows it."""
    built = addon_zip
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "BLENDER_USER_CONFIG": str(tmp_path / "config"),
           "BLENDER_USER_SCRIPTS": str(tmp_path / "scripts"), "DREAM_SERVER_ADDRESS": server.address,
           "DREAM_SERVER_TOKEN_FILE": token_file}
    scenarios = os.path.join(ROOT, "tests")
    prepared = subprocess.run(["blender", "-b", "--factory-startup", "--python",
                               os.path.join(scenarios, "blender_scenarios.py"), "--", "prepare_on_render",
                               str(work), built], env=env, capture_output=True, text=True, timeout=600)
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    result = run_in_window(["blender", str(work / "shot.blend"), "--python",
                            os.path.join(scenarios, "gui_scenarios.py"), "--", "on_render", str(work), built], env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    import json

    found = json.loads(lines[-1][len("RESULT "):])
    said = "\n".join(line for line in result.stdout.splitlines() if line.startswith("Dream Renders:"))
    assert "error" not in found, f"{found}\n{said}\n{result.stderr[-3000:]}"
    assert found["frame_shown_in"] == ["IMAGE_EDITOR"]  # Dream Frame opened a view: none was open
    assert found["refusal_was_stuck"]  # Blender refused every Python write mid-render: the add-on freed that
    assert found["files"] == ["shot_001.png", "shot_002.png", "shot_003.png"], f"{found}\n{said}"  # frame -> file
    assert found["summary"] == "Dream on Render: 3 frame(s) dreamed"
    assert found["output"]["filepath"] == "//out/shot_###" and found["output"]["format"] == "PNG"
    assert found["still"] == "Scene_00001_still.png" and found["still_size"] == [64, 48]
    assert found["output_after_still"] == found["output"]
    assert not found["helper_left"] and found["pump_kept"]
    animation = found["animation"]  # Dream Animation with the window live while Blender renders each frame
    assert animation["status"].startswith("Done:"), animation
    assert {f"Scene_0000{n}.png" for n in (1, 2, 3)} <= set(animation["frames"]), animation
    assert animation["live_ticks"] > 0, animation
    assert animation["partials"] == [] and animation["output"] == found["output"] and animation["on_render_quiet"]
    # saved while a frame rendered: nothing lands in the user's output, and the file opens with the user's output
    assert animation["out_untouched"] and animation["saved"], animation
    again = found["again"]
    assert again["renders_kept"] and again["status"].startswith("Done: 0 frame(s) dreamed"), again
    if not found["denoiser_built"]:  # Debian's Blender: a render that fails is said as one that stopped, with why
        assert found["failed_render"].startswith("Stopped after 0 frame(s): Blender's render of frame 1 ended "
                                                 "without its image (Esc in the render window, or the render "
                                                 "failed"), found["failed_render"]
    # --addons: the add-on enabled as a farm's worker enables it, whatever the preferences Blender saved at quit
    opened = subprocess.run(["blender", "-b", "--addons", "dream_renders", animation["saved"], "--python-expr",
                             "import bpy; s = bpy.context.scene; print('OUTPUT', s.render.filepath, "
                             "s.render.image_settings.file_format, 'dream_user_output' in s)"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert "OUTPUT //out/shot_### PNG False" in opened.stdout, opened.stdout[-2000:] + opened.stderr[-2000:]
