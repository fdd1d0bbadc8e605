"""Per-object strengths in real Blender on a real render (bpy 5.0.1 and
Debian's Blender 3.4): the scenarios in object_scenarios.py run Dream
Animation and Dream on Render; the pixels are judged here against
Blender's own frames, object by object, with the render's own Cryptomatte."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest
from conftest import ROOT, run_in_window
from test_blender import RUNTIMES, run_scenario

from dream_core import read_image
from dream_core.io.cryptomatte import read_cryptomatte

OBJECTS = os.path.join(ROOT, "tests", "object_scenarios.py")
EDGE_BAND = 2  # px at an object's outline where coverage blends


def _pixels(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return image[..., :3].astype(np.float64) / 255


def _core(coverage: np.ndarray) -> np.ndarray:
    """Pixels wholly inside an object, its edge band left out."""
    kernel = np.ones((2 * EDGE_BAND + 1, 2 * EDGE_BAND + 1), np.uint8)
    return cv2.erode((coverage > 0.999).astype(np.uint8), kernel).astype(bool)


def _away_from(coverage: np.ndarray) -> np.ndarray:
    """Pixels farther than the edge band from an object."""
    kernel = np.ones((2 * EDGE_BAND + 3, 2 * EDGE_BAND + 3), np.uint8)
    return ~cv2.dilate((coverage > 0).astype(np.uint8), kernel).astype(bool)


@pytest.mark.blender
@pytest.mark.blender_batch("object_strengths", module="object_scenarios")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_object_strengths_on_a_real_render(runtime, blender_batch):
    """The cube at 0 keeps Blender's own pixels; the sphere, keyed 0 -> 2,
    goes from as rendered to harder than with no strengths; the rest dreams
    as it does with none; Dream on Render alike; the user's passes as they
    were; renders made before the strengths were set are made again."""
    result, work, out = blender_batch(runtime, "object_strengths")
    assert "the render of frame 1 is without the Cryptomatte pass the object strengths need; rendering it " \
           "again" in out
    assert result["params"]["1"]["objects"] == {"Cube": 0.0, "Sphere": 0.0}
    assert result["params"]["3"]["objects"] == {"Cube": 0.0, "Sphere": 2.0}
    assert result["after"] == result["before"] and result["crypto_after"] == [False]
    assert result["masked"] == result["plain"] == [f"Scene_0000{f}.png" for f in (1, 2, 3)]
    assert result["on_render"] == [f"shot_00{f}.png" for f in (1, 2, 3)]
    sphere_change, rest_ratio = [], []
    for frame in (1, 2, 3):
        matte = read_cryptomatte(read_image(str(work / "dream" / "renders" / f"Scene_0000{frame}.exr")).passes)
        cube, sphere = matte.coverage_of(["Cube"]), matte.coverage_of(["Sphere"])
        own = _pixels(result["own"][frame - 1])
        masked = _pixels(work / "dream" / "frames" / f"Scene_0000{frame}.png")
        on_render = _pixels(work / "on_render" / f"shot_00{frame}.png")
        plain = _pixels(work / "plain" / f"Scene_0000{frame}.png")
        core = _core(cube)
        assert core.sum() > 50
        for name, dreamed in (("Dream Animation", masked), ("Dream on Render", on_render)):
            worst = np.abs(dreamed - own).max(axis=-1)[core].max()
            assert worst <= 1.01 / 255, (name, frame, worst * 255)
        change = np.abs(masked - own).mean(axis=-1)
        plain_change = np.abs(plain - own).mean(axis=-1)
        sphere_change.append(change[_core(sphere)].mean() / plain_change[_core(sphere)].mean())
        rest = _away_from(cube + sphere)
        rest_ratio.append(change[rest].mean() / plain_change[rest].mean())
    # keyed 0 -> 2: as rendered on frame 1, then growing (from nothing: there was no dream to carry on
    # frame 2), dreamed harder than with no strengths by frame 3
    assert sphere_change[0] < 0.02 and sphere_change[0] < sphere_change[1] < sphere_change[2], sphere_change
    assert sphere_change[2] > 1.15, sphere_change
    assert 0.8 < np.mean(rest_ratio) < 1.25, rest_ratio  # the rest dreams as strongly as without strengths


@pytest.mark.blender
@pytest.mark.blender_batch("collections_and_selection", module="object_scenarios")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_collections_give_strengths_and_dream_only_selected(runtime, blender_batch):
    result, _, _ = blender_batch(runtime, "collections_and_selection")
    # Cube from Props (0), Sphere from its child collection (2), Torus its own (1.5); the floor is in none
    assert result["inherited"] == {"objects": {"Cube": 0.0, "Sphere": 2.0, "Torus": 1.5}, "others": 1.0,
                                   "background": 1.0}
    assert "the render engine BLENDER_WORKBENCH writes none" in result["workbench"], result["workbench"]
    assert "the last render has no Cryptomatte object pass" in result["existing"], result["existing"]
    assert result["only"] == ["FINISHED"] and result["undo"]
    assert result["selected"] == {"objects": {"Plane": 0.0, "Cube": 0.0, "Torus": 0.0}, "others": 1.0,
                                  "background": 0.0}
    assert result["cleared"] is None  # no strength set: frames go without, no Cryptomatte rendered


@pytest.mark.blender
@pytest.mark.skipif(not (shutil.which("blender") and shutil.which("xvfb-run")), reason="needs blender and xvfb-run")
def test_dream_strength_panel_and_undo_in_the_window(tmp_path, addon_zip):
    """Blender 3.4 with a window: the Object properties draw Dream Strength;
    Dream Only Selected is one undo step."""
    prepared, work, _ = run_scenario("blender", "prepare_objects", tmp_path, addon_zip, {}, script=OBJECTS)
    user = tmp_path / "user"
    env = {**os.environ, "BLENDER_USER_CONFIG": str(user / "config"), "BLENDER_USER_SCRIPTS": str(user / "scripts")}
    result = run_in_window(["blender", prepared["blend"], "--python", os.path.join(ROOT, "tests", "gui_scenarios.py"),
                            "--", "objects", str(work), addon_zip], env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines and "Traceback" not in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(lines[-1][len("RESULT "):])
    assert found["only"] == ["FINISHED"]
    assert found["after_only"] == {"Plane": 0.0, "Cube": 0.0, "Sphere": 0.0, "Torus": 1.0}
    assert found["after_undo"] == {"Torus": 1.5}  # as before the operator
    shot = cv2.imread(found["screenshot"])
    assert shot is not None and shot.shape[0] > 300
