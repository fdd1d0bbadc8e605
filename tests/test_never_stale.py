"""Every frame written is of the scene as it is now, or the run says why
not: the add-on as a user drives it between runs (tests/stale_scenarios.py,
several scenarios per Blender process), in bpy 5.0.1 and Debian's 3.4."""
import os
import sys

import pytest
from test_blender import BLENDER, HAS_BPY, run_scenario

STATEFUL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stateful_scenarios.py")
SAME = 1.01 / 255  # an 8-bit level: mix 0 is Blender's own frame


def check_edits(edits: dict) -> None:
    assert max(edits["moved"]) <= SAME, edits  # rendered again after the edit
    assert max(edits["recoloured"]) <= SAME, edits
    assert edits["unchanged_kept"], edits  # nothing changed: nothing made again
    assert edits["stills_written"] == ["still_###.png"], edits  # where Blender writes a still
    assert edits["stills"][0] is not None and max(edits["stills"]) <= SAME, edits  # of the scene before/after
    assert "1 frame(s) dreamed" in edits["summary"], edits


def check_overwrite_off(result: dict) -> None:
    assert result["first"] == result["again"] == ["shot_001.png", "shot_002.png", "shot_003.png"], result
    assert result["kept"] == {"shot_001.png": True, "shot_003.png": True}, result  # not written again
    assert result["redone_max"] <= SAME, result  # the deleted frame is back, of the scene as it is
    assert result["changed_max"] <= SAME, result  # after an edit too (not held for a seam with older frames)
    assert result["placeholder_left_alone"], result  # another machine's frame
    assert result["user_settings"] == [False, True, "//out/shot_###"], result


@pytest.mark.blender
@pytest.mark.blender_batch("never_stale", module="stale_scenarios", scenario="all", runtime="bpy", env={
    "DREAM_SERVER_PYTHON": sys.executable, "DREAM_SERVER_ADDRESS": None, "DREAM_SERVER_TOKEN_FILE": None})
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_never_stale_in_bpy(blender_batch):
    result, _, _ = blender_batch("bpy", "never_stale")  # the add-on starts its server: server_killed kills it
    check_edits(result["edits"])
    check_overwrite_off(result["overwrite_off"])
    killed = result["server_killed"]
    assert killed["killed"] and killed["files"] == [f"shot_00{n}.png" for n in (1, 2, 3, 4)], killed
    assert killed["diffs"] == [0.0] * 4, killed  # carried on exactly: the uninterrupted render, to the bit
    writers = result["two_writers"]
    assert writers == {"names_differ": True, "error": None, "done": 2, "helpers_left": [], "running": False}


@pytest.mark.blender
@pytest.mark.blender_batch("never_stale", module="stale_scenarios", scenario="all", runtime="blender",
                           env={"DREAM_TEST_ONLY": "edits,overwrite_off"})
@pytest.mark.skipif(BLENDER is None, reason="Debian's blender not installed")
def test_never_stale_in_blender_3_4(blender_batch):
    result, _, _ = blender_batch("blender", "never_stale")
    check_edits(result["edits"])
    check_overwrite_off(result["overwrite_off"])


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")
def test_random_sessions_never_deliver_a_stale_frame(tmp_path, addon_zip):
    """tests/stateful_scenarios.py: random sequences of edits, settings, runs,
    stills, chunks, deletions and a killed server, each run's frames checked
    against a fresh run of the scene as it is now."""
    result, _, _ = run_scenario("bpy", "stateful", tmp_path, addon_zip,
                                {"DREAM_SERVER_PYTHON": sys.executable, "DREAM_TEST_EXAMPLES": "6",
                                 "DREAM_TEST_STEPS": "15"}, script=STATEFUL)
    assert result["passed"], "\n".join(result["failures"] + result["log"])
    assert result["steps"] >= 40, result["log"]  # it did not pass by doing nothing
