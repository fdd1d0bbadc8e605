"""Live Dream in a real window: Debian's Blender 3.4 under Xvfb
(tests/gui_scenarios.py, steps_live) with the dream server the add-on starts."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, run_in_window


def _view(path: str) -> np.ndarray:
    """The inside of the 3D view in a screenshot of its area: clear of the
    header and the toolbars, which Live Dream does not draw over."""
    from PIL import Image

    shot = np.asarray(Image.open(path).convert("RGB"), np.float32)
    height, width = shot.shape[:2]
    return shot[height // 4:height * 9 // 10, width // 8:width * 7 // 8]


def _changed(path: str, plain: np.ndarray) -> float:
    """The share of the view's pixels that differ from ``plain`` by more than 12 levels in a channel."""
    return float((np.abs(_view(path) - plain).max(axis=-1) > 12).mean())


@pytest.mark.blender
@pytest.mark.skipif(not (shutil.which("blender") and shutil.which("xvfb-run")), reason="needs blender and xvfb-run")
def test_live_dream_follows_a_moving_cube_and_leaves_nothing_behind(tmp_path, addon_zip):
    # the server the add-on starts itself, as an artist's: below Blender's CPU priority (the window comes first)
    env = {**os.environ, "BLENDER_USER_CONFIG": str(tmp_path / "config"),
           "BLENDER_USER_SCRIPTS": str(tmp_path / "scripts"), "DREAM_SERVER_PYTHON": sys.executable,
           "PYTHONPATH": ROOT}
    for name in ("DREAM_SERVER_ADDRESS", "DREAM_SERVER_TOKEN_FILE"):
        env.pop(name, None)
    work = tmp_path / "work"
    work.mkdir()
    start = work / "start.blend"  # Blender's default scene, opened as a file: no splash over the view
    subprocess.run(["blender", "-b", "--factory-startup", "--python-expr",
                    f"import bpy; bpy.ops.wm.save_as_mainfile(filepath={str(start)!r})"],
                   env=env, capture_output=True, timeout=300, check=True)
    result = run_in_window(["blender", str(start), "--python", os.path.join(ROOT, "tests", "gui_scenarios.py"),
                            "--", "live", str(work), addon_zip], env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(lines[-1][len("RESULT "):])
    assert "error" not in found, f"{found}\n{result.stderr[-3000:]}"
    print("Live Dream in the window:", json.dumps(found, indent=1))  # the figures, for docs/BENCHMARKS.md
    assert found["toggled_on"] == ["FINISHED"] and found["toggled_off"] == ["FINISHED"]
    assert found["panel_on"] == "Live Dream: reaching the dream server"  # not what an earlier stop said
    assert found["panel_off_at_once"] == ""  # nothing left saying it is on its way
    moving = found["moving"]
    assert moving["updates_while_moving"] >= 10 and moving["width"] == 256
    assert moving["height"] == round(256 * found["region"][1] / found["region"][0])  # the view's shape
    assert 0 < moving["latency_ms"] and moving["fps"] > 0
    assert found["full"]["depth"] == 1.0  # held still, the dream grew to its full depth
    assert found["captures_held_still"] <= 1  # and then the view is left alone
    plain = _view(found["plain"])
    assert _changed(found["dreamed"], plain) > 0.5  # the drawn view is the dream
    # at Mix 0 the drawn view is the view itself (captured at 256 px, sent, drawn back in its own colours)
    assert _changed(found["mix0"], plain) < 0.2 and np.abs(_view(found["mix0"]) - plain).mean() < 8
    assert np.abs(_view(found["off"]) - plain).max() <= 1 and not found["active_after_off"]  # off: plain again
    # held still, Live Dream costs the window nothing: a 10 ms timer fires as it does without it
    assert found["still_window"]["median_ms"] <= 2 * found["plain_window"]["median_ms"] + 5
