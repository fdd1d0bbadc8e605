"""``dream --ray``: a shot's chunks on a local Ray (two CPU actors on this
machine), writing into the shared output folder; resumable. Skipped where
Ray is not installed (it is an optional extra: dream-renders[ray])."""
import pytest
from conftest import run_cli

pytest.importorskip("ray")

from dream_core.batch.on_ray import actor_count, chunk_ranges  # noqa: E402
from dream_core.wire.plans import FramePlan  # noqa: E402


def test_chunks_and_actors_follow_the_cluster():
    plans = [FramePlan(n, f"in{n}", f"out{n}") for n in range(5, 17)]
    assert chunk_ranges(plans, 5) == [(5, 9), (10, 14), (15, 16)]
    assert actor_count({"CPU": 16.0, "GPU": 4.0}, None) == (4, {"num_gpus": 1})  # one per GPU
    assert actor_count({"CPU": 16.0, "GPU": 4.0}, 2) == (2, {"num_gpus": 1})
    assert actor_count({"CPU": 2.0}, None) == (2, {"num_cpus": 1})  # no GPU: one per CPU


@pytest.mark.slow
def test_a_shot_dreamed_on_a_local_ray_resumes(pan, tmp_path):
    out = tmp_path / "out"
    fast = ["--octaves", "1", "--iterations", "2", "--device", "cpu", "--temporal", "flow"]
    first = run_cli("dream", str(pan), "-o", str(out), "--ray", "--chunk-size", "3", "--ray-actors", "2",
                    "--preroll", "2", "--fade", "1", "-q", *fast)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "dreamed 8 frames" in first.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [f"pan_{n:04d}.exr" for n in range(1, 9)]
    again = run_cli("dream", str(pan), "-o", str(out), "--ray", "--chunk-size", "3", "--ray-actors", "2", "-q",
                    *fast)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "dreamed 0 frames (8 already done, skipped)" in again.stderr
    alone = run_cli("dream", str(pan / "pan_0001.exr"), "-o", str(tmp_path / "one.exr"), "--ray", *fast)
    assert alone.returncode == 2 and "--ray takes a folder" in alone.stderr


@pytest.mark.slow
def test_a_lost_actors_chunk_is_dreamed_again(pan, tmp_path):
    """An actor that dies (here: killed before its chunk arrives) is
    restarted and the chunk it was given still gets dreamed."""
    import ray

    from dream_core.batch.on_ray import RETRIES, ChunkDreamer, _run_chunks
    from dream_core.config import DreamConfig, DreamSettings
    from dream_core.io.sequences import list_frames, plan_frames

    settings = DreamSettings(temporal="flow", config=DreamConfig(octaves=1, iterations=1))
    plans = plan_frames(list_frames(str(pan)), str(tmp_path / "out"), None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES, num_cpus=1)(ChunkDreamer)
        pool = [remote.remote(settings.to_params(), "cpu") for _ in range(2)]
        ray.kill(pool[0], no_restart=False)  # as if its machine went away
        done, skipped = _run_chunks(ray, pool, plans, 4, 0, 0, quiet=True)
    finally:
        ray.shutdown()
    assert (done, skipped) == (8, 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"pan_{n:04d}.exr" for n in range(1, 9)]
