"""Render farms: the Flamenco job type (farm/flamenco/dream_renders.js) run
under node with a stand-in for Flamenco's author API, and the Blender
command lines it makes run for real (Debian's Blender 3.4, Dream on Render,
a real dream server): chunks out of order, each with its pre-roll."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROOT
from test_blender import BLENDER

JOB_TYPE = os.path.join(ROOT, "farm", "flamenco", "dream_renders.js")
STUB = os.path.join(ROOT, "tests", "flamenco_stub.js")
CASES = os.path.join(ROOT, "tests", "cases", "farm_tasks.json")
NODE = shutil.which("node")
SETTINGS = {"frames": "1-45", "chunk_size": 20, "preroll": 10, "fade": 5, "addon": "dream_renders", "scene": "Scene",
            "render_output_path": "/farm/shot/dream/######", "blendfile": "/farm/shot.blend", "format": "PNG"}


def compile_job(**changes) -> list:
    done = subprocess.run([NODE, STUB, JOB_TYPE, json.dumps({**SETTINGS, **changes})], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def frames_of(task) -> tuple:
    """(first rendered, last, first written) from a task's Blender arguments."""
    args = task["commands"][0]["parameters"]["args"]
    return (int(args[args.index("--frame-start") + 1]), int(args[args.index("--frame-end") + 1]),
            int(args[args.index("--dream-write-from") + 1]))


def fade_of(task) -> int:
    args = task["commands"][0]["parameters"]["args"]
    return int(args[args.index("--dream-fade") + 1]) if "--dream-fade" in args else 0


@pytest.mark.skipif(NODE is None, reason="needs node")
@pytest.mark.parametrize("case", json.load(open(CASES))["cases"], ids=lambda c: f"{c['frames']}/{c['chunk_size']}")
def test_the_job_type_chunks_a_shot_as_the_shot_planner_does(case):
    """The same table as dream_core.shot.planner.farm_tasks (tests/test_shots.py)."""
    tasks = compile_job(frames=case["frames"], chunk_size=case["chunk_size"], preroll=case["preroll"], fade=0)
    assert [list(frames_of(t)) for t in tasks] == case["tasks"]


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_the_job_type_chunks_a_shot_with_a_preroll_each():
    tasks = compile_job(preroll=10)
    assert [t["name"] for t in tasks] == ["dream-1-20", "dream-21-40", "dream-41-45"]
    assert [fade_of(t) for t in tasks] == [0, 0, 0]  # the fade is the shot's (Seam Fade, in the .blend)
    command = tasks[0]["commands"][0]
    assert command["name"] == "blender-render" and command["parameters"]["blendfile"] == "/farm/shot.blend"
    args = command["parameters"]["args"]
    assert args[:4] == ["--addons", "dream_renders", "--scene", "Scene"]
    assert args.index("--render-anim") < args.index("--") < args.index("--dream-write-from")  # ours after "--"
    bad = subprocess.run([NODE, STUB, JOB_TYPE, json.dumps({**SETTINGS, "preroll": -1})], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "preroll must be 0 or more" in bad.stderr, bad.stderr


@pytest.mark.blender
@pytest.mark.blender_batch("prepare_jobs", scenario="prepare_on_render", runtime="blender")
@pytest.mark.skipif(NODE is None or BLENDER is None, reason="needs node and Debian's blender")
def test_the_jobs_command_lines_dream_chunks_out_of_order(tmp_path, blender_batch, via_server):
    prepared, work, _ = blender_batch("blender", "prepare_jobs")
    out = work / "farm_out"
    tasks = compile_job(frames="1-3", chunk_size=2, preroll=1, fade=0, blendfile=prepared["blend"],
                        render_output_path=str(out / "shot_###"))
    assert [frames_of(t) for t in tasks] == [(1, 2, 1), (2, 3, 3)]
    user = blender_batch.user("blender")
    env = {**os.environ, "BLENDER_USER_CONFIG": str(tmp_path / "farm_config"),
           "BLENDER_USER_SCRIPTS": str(user / "scripts"), **via_server}

    def run(task):
        parameters = task["commands"][0]["parameters"]
        done = subprocess.run([BLENDER, "-b", parameters["blendfile"], *parameters["args"]], capture_output=True,
                              text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    second = run(tasks[1])  # the later chunk first, as a farm may run them
    assert "Dream on Render: 1 frame(s) dreamed after 1 pre-roll frame(s)" in second
    assert sorted(p.name for p in out.iterdir()) == ["shot_003.png"]  # the pre-roll frame is not written
    run(tasks[0])
    assert sorted(p.name for p in out.iterdir()) == ["shot_001.png", "shot_002.png", "shot_003.png"]
    dream = work / "dream"
    assert sorted(p.name for p in (dream / "renders").iterdir()) == [f"Scene_0000{n}.exr" for n in (1, 2, 3)]
    assert not [p for p in dream.iterdir() if p.name.startswith(".preroll_")]  # scratch folders removed
    again = run(tasks[1])  # frame 2 is on the shared disk now: no pre-roll dreamed
    assert "frame 3 carries on from the dream of frame 2" in again
    assert "Dream on Render: 1 frame(s) dreamed" in again and "pre-roll" not in again


def assert_seam_blend(client, dream, written, frame: int, share: float) -> None:
    """``written`` (float EXR) is the seam's frame as the server makes it: the
    chunk before's chain (its state kept after ``frame - 1``) dreamed on over
    the frame and cross-faded into the chunk after's held dream."""
    from dream_core.io import decode_image, read_image
    from dream_core.shot.provenance import Records
    from dream_core.wire.client import FrameRequest

    records = Records(str(dream / ".dream"))
    end = records.file(str(dream / "linear" / f"Scene_{frame - 1:05d}.exr")).link  # EXR output: carried back
    render = dream / "renders" / f"Scene_{frame:05d}.exr"
    held = dream / ".dream" / "held" / f"Scene_{frame:05d}.png"  # as shown: the seam is faded there
    shown = dream / ".dream" / "shown_input" / f"Scene_{frame:05d}.png"
    request = FrameRequest(render.read_bytes(), "exr", frame=frame, params=records.file(str(render)).extra["params"],
                           extras={"previous_state": (records.read_state(end), {"format": "dream-state"}),
                                   "blend_with": (held.read_bytes(), {"format": "png"}),
                                   "display": (shown.read_bytes(), {"format": "png"})},
                           output={"format": "exr"}, blend_share=share)
    (result,) = client.dream_many([request], job="seam-check")
    expected = decode_image(result.data, "exr").pixels
    np.testing.assert_allclose(read_image(str(written)).pixels, expected, atol=2e-3)
    assert records.file(str(dream / "linear" / f"Scene_{frame:05d}.exr")).made == "blend"


@pytest.mark.blender
@pytest.mark.blender_batch("farm_fade", runtime="bpy")
def test_farm_chunks_cross_fade_in_bpy(blender_batch, client):
    """Two chunks side by side in bpy 5.0 with the shot's Seam Fade of 1:
    frames 2-3 end first and hold frame 2; frame 1 ends second and writes
    frame 2 as the cross-fade of its chain carried on into the held one."""
    result, work, stdout = blender_batch("bpy", "farm_fade")
    assert "cross-faded frame(s) 2 at chunk seams" in stdout
    assert result["files"] == ["shot_001.exr", "shot_002.exr", "shot_003.exr"]
    assert result["after"] == result["before"]  # the scene's own output settings, after both chunks
    assert result["waiting_after_first"] == [2]
    assert_seam_blend(client, work / "dream", work / "out" / "shot_002.exr", 2, 0.5)


@pytest.mark.blender
@pytest.mark.blender_batch("prepare_seam", scenario="prepare_on_render", runtime="blender",
                           env={"DREAM_TEST_FORMAT": "exr_float", "DREAM_TEST_FADE": "1"})
@pytest.mark.skipif(NODE is None or BLENDER is None, reason="needs node and Debian's blender")
def test_chunks_side_by_side_cross_fade_their_seam(tmp_path, blender_batch, via_server, client):
    """Frames 1-2 and 3 (pre-roll 1) as the job type makes them, with the
    shot's Seam Fade of 1, written as float EXR so the blend can be checked
    exactly: frame 3 is written once, by whichever chunk ends second, as the
    cross-fade of the first chunk's chain carried on into the second's."""
    prepared, work, _ = blender_batch("blender", "prepare_seam")
    out, dream = work / "farm_out", work / "dream"
    tasks = compile_job(frames="1-3", chunk_size=2, preroll=1, blendfile=prepared["blend"],
                        render_output_path=str(out / "shot_###"), format="OPEN_EXR")
    assert [frames_of(t) for t in tasks] == [(1, 2, 1), (2, 3, 3)]
    env = {**os.environ, "BLENDER_USER_CONFIG": str(tmp_path / "farm_config"),
           "BLENDER_USER_SCRIPTS": str(blender_batch.user("blender") / "scripts"), **via_server}

    def blender(*args):
        done = subprocess.run([BLENDER, "-b", prepared["blend"], *args], capture_output=True, text=True, env=env,
                              timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    def run(task, *after_render):
        args = task["commands"][0]["parameters"]["args"]
        split = args.index("--")
        return blender(*args[:split], *after_render, *args[split:])

    first = run(tasks[1])  # the later chunk first: it holds frame 3 for the seam
    assert "frames 3-3 are dreamed and held for the seam" in first and "cross-faded frame(s)" not in first
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []
    assert "cross-faded frame(s) 3 at chunk seams" in run(tasks[0])  # ends second: it writes the seam
    assert sorted(p.name for p in out.iterdir()) == ["shot_001.exr", "shot_002.exr", "shot_003.exr"]
    fresh = blender("--addons", "dream_renders", "--python-expr",
                    "import bpy; bpy.context.scene.dream.output_dir = '//fresh/'", "--render-output",
                    str(work / "fresh_out" / "shot_###"), "-a")  # one uninterrupted render: chain 1-3
    assert "3 frame(s) dreamed" in fresh
    assert_seam_blend(client, dream, out / "shot_003.exr", 3, 0.5)
    for n in (1, 2):  # outside the seam: the first chunk is the uninterrupted render
        np.testing.assert_array_equal(_exr(out / f"shot_00{n}.exr"), _exr(work / "fresh_out" / f"shot_00{n}.exr"))
    again = run(tasks[1])  # a retry of the later chunk: everything is current, the seam included
    assert "0 frame(s) dreamed" in again or "1 frame(s) dreamed" in again


def _exr(path):
    from dream_core.io import read_image

    return read_image(str(path)).pixels
