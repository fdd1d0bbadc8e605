"""``dream --ray``: a shot's chunks on a local Ray (two CPU actors on this
machine), in the shared output folder or through the driver; resumable; a
lost actor's chunk dreamed again. Skipped where Ray is not installed (it is
an optional extra: dream-renders[ray])."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import cli

from dream_core.io import read_image

pytest.importorskip("ray")

from dream_core.batch.on_ray import actor_count, chunk_ranges, sees_files  # noqa: E402
from dream_core.shot.frame_plans import FramePlan  # noqa: E402


def test_chunks_and_actors_follow_the_cluster():
    plans = [FramePlan(n, f"in{n}", f"out{n}") for n in range(5, 17)]
    assert chunk_ranges(plans, 5) == [(5, 9), (10, 14), (15, 16)]
    assert actor_count({"CPU": 16.0, "GPU": 4.0}, None) == (4, {"num_gpus": 1})  # one per GPU
    assert actor_count({"CPU": 16.0, "GPU": 4.0}, 2) == (2, {"num_gpus": 1})
    assert actor_count({"CPU": 2.0}, None) == (2, {"num_cpus": 1})  # no GPU: one per CPU


def test_an_actor_reaches_the_files_only_when_it_sees_the_probe_and_the_first_frame(tmp_path):
    probe, source = tmp_path / ".ray_probe", tmp_path / "frame.png"
    probe.write_text("token")
    source.write_bytes(b"12345")
    assert sees_files(str(probe), "token", str(source), 5)
    assert not sees_files(str(probe), "other", str(source), 5)  # another machine's folder of the same name
    assert not sees_files(str(probe), "token", str(source), 6)  # another copy of the input
    assert not sees_files(str(tmp_path / "missing"), "token", str(source), 5)
    assert not sees_files(str(probe), "token", str(tmp_path / "missing.png"), 5)


@pytest.fixture(scope="module")
def ray_here():
    """One local Ray for this module's tests (a worker runs them both: see xdist_group), connected in this
    process: ``dream --ray`` run in it uses it (and leaves it up) instead of starting one of its own."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_shot_dreamed_on_a_local_ray_resumes(pan, tmp_path, ray_here):
    out = tmp_path / "out"
    fast = ["--octaves", "1", "--iterations", "2", "--device", "cpu", "--temporal", "flow"]
    # two chunks for two actors: both start at once, so chunk 5-8 always warms up with frames 3-4 and
    # holds frame 5 for the fade (with three chunks the third would carry on or warm up as the first two end)
    first = cli("dream", str(pan), "-o", str(out), "--ray", "--chunk-size", "4", "--ray-actors", "2",
                "--preroll", "2", "--fade", "1", "-q", *fast)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "dreamed 8 frames" in first.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [f"pan_{n:04d}.exr" for n in range(1, 9)]
    through = tmp_path / "through_driver"  # as for actors on machines that do not reach the folders
    driven = cli("dream", str(pan), "-o", str(through), "--ray", "--chunk-size", "4", "--ray-actors", "2",
                 "--preroll", "2", "--fade", "1", "--ray-io", "driver", "-q", *fast)
    assert driven.returncode == 0, driven.stderr[-3000:]
    assert "dreamed 8 frames" in driven.stderr
    assert (out / ".dream" / "held" / "pan_0005.exr").exists()
    for n in range(1, 9):  # the same frames, the seam blended alike
        np.testing.assert_allclose(read_image(str(through / f"pan_{n:04d}.exr")).pixels,
                                   read_image(str(out / f"pan_{n:04d}.exr")).pixels, atol=1e-4, err_msg=str(n))
    again = cli("dream", str(pan), "-o", str(out), "--ray", "--chunk-size", "3", "--ray-actors", "2", "-q",
                *fast)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "dreamed 0 frames (8 already done, skipped)" in again.stderr
    alone = cli("dream", str(pan / "pan_0001.exr"), "-o", str(tmp_path / "one.exr"), "--ray", *fast)
    assert alone.returncode == 2 and "--ray takes a folder" in alone.stderr
    assert ray_here.is_initialized()  # the caller's Ray is left up (a command of its own shuts its own down)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_lost_actors_chunk_is_dreamed_again(pan, tmp_path, ray_here):
    """Actors that die (one killed before its chunk arrives, one that ends
    its process in the middle of a chunk) are restarted and every frame is
    still dreamed, in the shared folder and through the driver."""
    import dying_actor
    import ray
    from dying_actor import DiesOnce
    from ray import cloudpickle

    from dream_core.batch.on_ray import RETRIES, ChunkDreamer, _run_chunks
    from dream_core.config import DreamConfig, DreamSettings
    from dream_core.io.sequences import list_frames, plan_frames
    cloudpickle.register_pickle_by_value(dying_actor)  # the workers cannot import the tests
    settings = DreamSettings(temporal="flow", config=DreamConfig(octaves=1, iterations=1))
    frames = [f"pan_{n:04d}.exr" for n in range(1, 9)]

    def dream(actor_class, out, shared):
        plans = plan_frames(list_frames(str(pan)), str(tmp_path / out), None)
        remote = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES, num_cpus=1)(actor_class)
        pool = [remote.remote(settings.to_params(), "cpu") for _ in range(2)]
        if actor_class is ChunkDreamer:
            # both made first: one killed while Ray was still making it was once never restarted (a hang)
            ray.get([actor.reaches.remote("", "", "", 0) for actor in pool])
            ray.kill(pool[0], no_restart=False)  # as if its machine went away
        return _run_chunks(ray, pool, plans, 4, 2, 1, True, {actor: shared for actor in pool})

    assert dream(ChunkDreamer, "killed", True) == (8, 0)
    for out, shared in (("died_shared", True), ("died_driven", False)):
        DiesOnce.marker = str(tmp_path / f"{out}.died")
        assert dream(DiesOnce, out, shared) == (8, 0), out
        assert (tmp_path / f"{out}.died").exists()  # it did die
    for out in ("killed", "died_shared", "died_driven"):
        assert sorted(p.name for p in (tmp_path / out).iterdir() if p.is_file()) == frames, out
        for name in frames:
            assert np.isfinite(read_image(str(tmp_path / out / name)).pixels).all()


@pytest.mark.slow
def test_ctrl_c_stops_every_process_of_the_run(pan, tmp_path):
    """Ctrl+C (SIGINT to the command's process group, as a terminal sends it)
    once the first frame is written: the run ends with status 130, saying so,
    and leaves no Ray process behind and no half-written frame."""
    out = tmp_path / "out"
    slow = ["--octaves", "1", "--iterations", "200", "--device", "cpu", "--temporal", "flow"]  # far from done
    def own_session_hearing_ctrl_c():
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a suite started with & from a script inherits it ignored

    run = subprocess.Popen([sys.executable, "-m", "dream_core", "dream", str(pan), "-o", str(out), "--ray",
                            "--chunk-size", "2", "--ray-actors", "2", "-q", *slow],
                           preexec_fn=own_session_hearing_ctrl_c, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        while not (out.is_dir() and any(p.suffix == ".exr" for p in out.iterdir())):
            assert run.poll() is None, run.communicate()[1][-3000:]
            time.sleep(0.05)
        os.killpg(run.pid, signal.SIGINT)
        _, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130, err[-3000:]
    assert "interrupted; finished frames are kept, run again to resume" in err
    written = sorted(p.name for p in out.iterdir() if p.is_file())
    assert 0 < len(written) < 8 and all(name.endswith(".exr") for name in written), written
    for name in written:
        assert np.isfinite(read_image(str(out / name)).pixels).all()

    def left_in_session():
        ps = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True, check=True).stdout
        return [line.split()[0] for line in ps.splitlines() if line.split()[1] == str(run.pid)]

    deadline = time.monotonic() + 120  # Ray's processes end as they notice the shutdown
    while left_in_session() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left_in_session() == []
