"""The add-on's panel drawn in a real Blender window (Debian's Blender 3.4
under Xvfb), saved as a screenshot."""
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.blender
@pytest.mark.skipif(not (shutil.which("blender") and shutil.which("xvfb-run")), reason="needs blender and xvfb-run")
def test_panel_screenshot(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, os.path.join(ROOT, "build.py"), "--out", str(dist)],
                           capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "BLENDER_USER_CONFIG": str(tmp_path / "config"),
           "BLENDER_USER_SCRIPTS": str(tmp_path / "scripts")}
    # preferences without the first-run splash, as a user's would be
    subprocess.run(["blender", "-b", "--factory-startup", "--python-expr",
                    "import bpy; bpy.context.preferences.view.show_splash = False; bpy.ops.wm.save_userpref()"],
                   env=env, capture_output=True, timeout=120, check=True)
    out, without = tmp_path / "panel.png", tmp_path / "without.png"
    result = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "blender", "--python",
                             os.path.join(ROOT, "demo", "screenshot_panel.py"), "--", built, str(out), str(without)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert out.exists() and without.exists(), result.stdout[-2000:] + result.stderr[-2000:]
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
