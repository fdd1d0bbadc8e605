"""A shot dreamed in chunks (``--frames A-B``), as one machine of a farm
dreams its share, and runs killed and run again: decided from the records
in OUTPUT/.dream (what made each frame), never from which files exist. In
this process: the batch runner with a real model; and the CLI killed for
real."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, cli

from dream_core.batch.local import LocalBackend
from dream_core.batch.run import Work, run_batch
from dream_core.config import DreamConfig, DreamSettings
from dream_core.io import read_image, write_image
from dream_core.io.sequences import list_frames, plan_frames
from dream_core.shot.provenance import Records

SETTINGS = DreamSettings(temporal="flow", config=DreamConfig(octaves=2, iterations=3, step=0.03, seed=1))
BACKEND = {}


def backend():
    if "lite0" not in BACKEND:
        BACKEND["lite0"] = LocalBackend(SETTINGS, device="cpu")
    return BACKEND["lite0"]


class Killed(Exception):
    pass


class Dies:
    """The backend, killed after ``after`` frames dreamed (a crash, Ctrl+C, a lost machine)."""

    def __init__(self, after: int) -> None:
        self.after, self.settings = after, SETTINGS

    def dream_frames(self, works, progress, restore=None):
        for result in backend().dream_frames(works, progress, restore):
            if self.after == 0:
                raise Killed()
            self.after -= 1
            yield result


def dream_chunk(pan, out, frames=None, preroll=0, fade=0, dreamer=None):
    plans = plan_frames(list_frames(str(pan)), str(out), None)
    return run_batch(plans, dreamer or backend(), quiet=True, frames=frames, preroll=preroll, fade=fade)


def pixels(folder, n):
    return read_image(str(folder / f"pan_{n:04d}.exr")).pixels


def frames_in(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_file())


@pytest.fixture()
def whole(pan, tmp_path):
    out = tmp_path / "whole"
    assert dream_chunk(pan, out).done == 8
    return out


@pytest.mark.slow
def test_chunks_in_order_and_killed_runs_make_the_uninterrupted_shot(pan, tmp_path, whole):
    chunked = tmp_path / "chunked"
    assert dream_chunk(pan, chunked, frames=(1, 4)).done == 4
    assert dream_chunk(pan, chunked, frames=(5, 8), preroll=3, fade=2).done == 4  # carries on: no pre-roll, no seam
    killed = tmp_path / "killed"
    for after in (2, 0, 3):  # killed three times, as a farm's retries see it
        with pytest.raises(Killed):
            dream_chunk(pan, killed, dreamer=Dies(after))
    assert len(frames_in(killed)) == 5
    assert dream_chunk(pan, killed).done == 3  # carries on from its kept state: no frame dreamed twice
    for n in range(1, 9):
        np.testing.assert_array_equal(pixels(chunked, n), pixels(whole, n))
        np.testing.assert_array_equal(pixels(killed, n), pixels(whole, n))
    assert dream_chunk(pan, killed).done == 0  # all current
    cold = tmp_path / "cold"
    dream_chunk(pan, cold, frames=(5, 8))  # nothing before it: a chain of its own
    assert np.abs(pixels(cold, 5) - pixels(whole, 5)).mean() > 0.005


@pytest.mark.slow
def test_a_changed_source_is_dreamed_again_with_everything_it_carries_into(pan, tmp_path, whole):
    render = read_image(str(pan / "pan_0005.exr"))
    write_image(str(pan / "pan_0005.exr"), render.with_pixels(render.pixels[:, ::-1].copy()))
    before = {n: pixels(whole, n) for n in range(1, 9)}
    result = dream_chunk(pan, whole)
    assert (result.done, result.skipped) == (4, 4)  # frames 5-8: 5's render changed, 6-8 carry its dream
    for n in range(1, 5):
        np.testing.assert_array_equal(pixels(whole, n), before[n])
    fresh = tmp_path / "fresh"
    dream_chunk(pan, fresh)
    for n in range(1, 9):
        np.testing.assert_array_equal(pixels(whole, n), pixels(fresh, n))


def test_a_frame_replaced_by_someone_else_is_not_taken_for_ours(pan, whole):
    target = whole / "pan_0003.exr"
    kept = read_image(str(target))
    write_image(str(target), kept.with_pixels(np.zeros_like(kept.pixels)))  # another tool wrote over it
    assert dream_chunk(pan, whole).done == 1  # only that frame: the chain's state around it is kept
    np.testing.assert_array_equal(read_image(str(target)).pixels, kept.pixels)


@pytest.mark.slow
def test_chunks_side_by_side_write_each_seam_frame_once_already_blended(pan, tmp_path):
    """Chunk 5-8 ends first: it cannot carry on, so it starts its own chain
    (warmed by the pre-roll) and holds frames 5-6 aside. When chunk 1-4
    ends it carries its chain on over 5-6 from its kept state and writes the
    cross-fade (frame/crossfade.py), each frame once."""
    out = tmp_path / "out"
    result = dream_chunk(pan, out, frames=(5, 8), preroll=2, fade=2)
    assert (result.done, result.waiting) == (2, (5, 6))
    assert frames_in(out) == ["pan_0007.exr", "pan_0008.exr"]  # never a pre-blend frame under the final name
    held = {n: read_image(str(out / ".dream" / "held" / f"pan_{n:04d}.exr")) for n in (5, 6)}
    assert dream_chunk(pan, out, frames=(1, 4), preroll=2, fade=2).done == 6  # its 4, and the seam's 2
    assert frames_in(out) == [f"pan_{n:04d}.exr" for n in range(1, 9)]
    records = Records.beside(str(out))
    end = records.file(str(out / "pan_0004.exr")).link  # chunk 1-4's chain, carried on over the seam
    works = [Work(read_image(str(pan / f"pan_{n:04d}.exr")), n, blend=(held[n], share))
             for n, share in ((5, 1 / 3), (6, 2 / 3))]
    expected = [p.pixels for p, _ in backend().dream_frames(works, lambda p: None, records.read_state(end))]
    uninterrupted = tmp_path / "whole"
    dream_chunk(pan, uninterrupted)
    for n, pixels_expected in zip((5, 6), expected):
        np.testing.assert_array_equal(pixels(out, n), pixels_expected)
        assert records.file(str(out / f"pan_{n:04d}.exr")).made == "blend"
        assert np.abs(held[n].pixels - pixels(uninterrupted, n)).mean() > 0.005  # two chains: two patterns
        assert np.abs(pixels(out, n) - held[n].pixels).mean() > 0.001  # a fade, not either alone
    again = [dream_chunk(pan, out, frames=f, preroll=2, fade=2) for f in ((1, 4), (5, 8))]
    assert [r.done for r in again] == [0, 0]  # everything current, the seam included


@pytest.mark.slow
def test_a_rerun_finishes_the_seam_its_chunk_was_killed_before(pan, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Killed):  # killed after its first held frame, before any written one
        dream_chunk(pan, out, frames=(5, 8), preroll=2, fade=2, dreamer=Dies(3))
    assert dream_chunk(pan, out, frames=(1, 4), fade=2).done == 4  # a seam half held is not blended
    assert frames_in(out) == [f"pan_{n:04d}.exr" for n in range(1, 5)]
    result = dream_chunk(pan, out, frames=(5, 8), preroll=2, fade=2)  # the chunk before is done: it carries on
    assert result.done == 4 and result.waiting == ()
    uninterrupted = tmp_path / "whole"
    dream_chunk(pan, uninterrupted)
    for n in range(5, 9):
        np.testing.assert_array_equal(pixels(out, n), pixels(uninterrupted, n))


@pytest.mark.slow
def test_held_copies_of_a_chain_that_is_not_current_are_never_blended(pan, tmp_path):
    out = tmp_path / "out"
    dream_chunk(pan, out, frames=(5, 8), preroll=2, fade=2)  # holds 5-6 of a chain warmed on frames 3-4
    assert dream_chunk(pan, out, frames=(1, 4), preroll=2, fade=2).done == 6
    render = read_image(str(pan / "pan_0004.exr"))  # frame 4 is rendered again, differently
    write_image(str(pan / "pan_0004.exr"), render.with_pixels(render.pixels[::-1].copy()))
    assert dream_chunk(pan, out, frames=(1, 4), preroll=2, fade=2).done == 1  # frame 4 only: no blend with
    result = dream_chunk(pan, out, frames=(5, 8), preroll=2, fade=2)  # copies of a chain warmed on the old 4
    assert result.done == 4 and result.waiting == ()  # the chunk before is done: it carries on, no seam
    uninterrupted = tmp_path / "whole"
    dream_chunk(pan, uninterrupted)
    for n in range(1, 9):
        np.testing.assert_array_equal(pixels(out, n), pixels(uninterrupted, n))


def test_cli_chunks_and_their_mistakes(pan, tmp_path):
    out = tmp_path / "out"
    fast = ["--octaves", "1", "--iterations", "1", "--device", "cpu", "-q", "--temporal", "flow"]
    done = cli("dream", str(pan), "-o", str(out), "--frames", "5-6", "--preroll", "2", "--fade", "1", *fast)
    assert done.returncode == 0, done.stderr
    assert frames_in(out) == ["pan_0006.exr"]
    assert "frames 5-5 wait for the chunk before" in done.stderr
    for args, words in ((["--frames", "20-30"], "no frames 20-30 in"),
                        (["--frames", "4-2"], "the last frame is before the first"),
                        (["--frames", "x"], "frames must be A-B or A"),
                        (["--preroll", "-1", "--frames", "1-2"], "--preroll must be 0 or more"),
                        (["--frames", "3-4", "--fade", "-1"], "--fade must be 0 or more"),
                        (["--fade", "2", "--preroll", "4"], "--fade needs --frames")):
        bad = cli("dream", str(pan), "-o", str(tmp_path / "bad"), *args, *fast)
        assert bad.returncode == 2 and words in bad.stderr, (args, bad.stderr)
    chainless = cli("dream", str(pan), "-o", str(tmp_path / "bad"), "--frames", "3-4", "--fade", "2",
                    *fast[:-2], "--temporal", "none")
    assert chainless.returncode == 2 and "--fade carries a chain of frames" in chainless.stderr, chainless.stderr
    one = cli("dream", str(pan / "pan_0001.exr"), "-o", str(tmp_path / "one.exr"), "--frames", "1-2", *fast)
    assert one.returncode == 2 and "--frames takes a folder" in one.stderr


@pytest.mark.slow
def test_the_cli_killed_for_real_resumes_the_same_shot(pan, tmp_path):
    """``dream DIR`` killed (SIGKILL) as soon as its second frame is on disk,
    then run again: the shot of one uninterrupted run, to the bit."""
    args = ["dream", str(pan), "-q", "--device", "cpu", "--temporal", "flow", "--octaves", "1", "--iterations", "2",
            "--seed", "1"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert cli(*args, "-o", str(whole)).returncode == 0  # in this process: the same dream, to the bit
    process = subprocess.Popen([sys.executable, "-m", "dream_core", *args, "-o", str(killed)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None and not (killed / "pan_0002.exr").exists():
            os.sched_yield()
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=600)
    assert len(frames_in(killed)) < 8
    again = cli(*args, "-o", str(killed))
    assert again.returncode == 0, again.stderr
    for n in range(1, 9):
        np.testing.assert_array_equal(pixels(killed, n), pixels(whole, n))


def test_a_chunk_no_longer_than_its_fade_is_refused_unless_it_ends_the_shot(pan, tmp_path):
    """Frames 3-4 with a fade of 2 would all wait for the chunk before, and the seam after them would have
    nothing of their chain to blend: run before the chunk after, frames 5-8 were never written while every
    chunk exited 0. Refused before anything is written; the shot's last chunk (7-8) has no seam after it."""
    out = tmp_path / "out"
    fast = ["--octaves", "1", "--iterations", "1", "--device", "cpu", "-q", "--temporal", "flow"]
    refused = cli("dream", str(pan), "-o", str(out), "--frames", "3-4", "--fade", "2", *fast)
    assert refused.returncode == 2, refused.stderr
    assert "--fade 2 must be shorter than every chunk but the shot's last; frames 3-4 are 2" in refused.stderr
    assert not out.exists() or not any(out.iterdir())
    last = cli("dream", str(pan), "-o", str(out), "--frames", "7-8", "--fade", "2", *fast)
    assert last.returncode == 0 and "frames 7-8 wait for the chunk before" in last.stderr, last.stderr
