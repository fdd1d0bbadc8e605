"""A shot dreamed in chunks (``--frames A-B``), as one machine of a farm
dreams its share: a chunk carries on from the dream of the frame before
when it is on disk, else warms its chain with ``--preroll`` frames that are
dreamed and dropped. In this process: the batch runner with a real model."""
import numpy as np
from conftest import run_cli

from dream_core.batch.local import LocalBackend
from dream_core.batch.run import run_batch
from dream_core.config import DreamConfig, DreamSettings
from dream_core.io import read_image, write_image
from dream_core.io.sequences import list_frames, plan_frames

SETTINGS = DreamSettings(temporal="flow", config=DreamConfig(octaves=2, iterations=3, step=0.03, seed=1))


def dream_chunk(pan, out, frames=None, preroll=0, fade=0) -> int:
    plans = plan_frames(list_frames(str(pan)), str(out), None)
    done, _ = run_batch(plans, LocalBackend(SETTINGS, device="cpu"), quiet=True, frames=frames, preroll=preroll,
                        fade=fade)
    return done


def pixels(folder, n):
    return read_image(str(folder / f"pan_{n:04d}.exr")).pixels


def test_a_chunk_after_one_on_disk_carries_on_as_if_unchunked(pan, tmp_path):
    whole, chunked, cold = tmp_path / "whole", tmp_path / "chunked", tmp_path / "cold"
    assert dream_chunk(pan, whole) == 8
    assert dream_chunk(pan, chunked, frames=(1, 4)) == 4
    assert sorted(p.name for p in chunked.iterdir()) == [f"pan_{n:04d}.exr" for n in range(1, 5)]
    assert dream_chunk(pan, chunked, frames=(5, 8), preroll=3) == 4  # frame 4 is on disk: no pre-roll needed
    assert dream_chunk(pan, cold, frames=(5, 8)) == 4  # nothing before it: starts cold
    for n in range(5, 9):
        carried = np.abs(pixels(chunked, n) - pixels(whole, n)).mean()
        started_cold = np.abs(pixels(cold, n) - pixels(whole, n)).mean()
        assert carried < 0.2 * started_cold, (n, carried, started_cold)


def test_preroll_warms_the_chain_and_writes_only_the_chunk(pan, tmp_path):
    whole, warm, cold = tmp_path / "whole", tmp_path / "warm", tmp_path / "cold"
    dream_chunk(pan, whole)
    assert dream_chunk(pan, warm, frames=(5, 8), preroll=4) == 4
    assert sorted(p.name for p in warm.iterdir()) == [f"pan_{n:04d}.exr" for n in range(5, 9)]
    dream_chunk(pan, cold, frames=(5, 8))
    warmed = np.abs(pixels(warm, 5) - pixels(whole, 5)).mean()
    started_cold = np.abs(pixels(cold, 5) - pixels(whole, 5)).mean()
    assert not np.array_equal(pixels(warm, 5), pixels(cold, 5))  # the pre-roll changed what frame 5 carries
    assert warmed < started_cold, (warmed, started_cold)


def test_a_fade_blends_the_seam_of_chunks_dreamed_side_by_side(pan, tmp_path):
    """Chunk 2 ends first (no frame 4 to carry on from): it dreams frames 3
    and 4 as its pre-roll and keeps them; when chunk 1 ends, frames 3 and 4
    become 1/3 and 2/3 of the way from its own dreams to chunk 2's."""
    out = tmp_path / "out"
    dream_chunk(pan, out, frames=(5, 8), preroll=2, fade=2)
    dream_chunk(pan, out, frames=(1, 4), preroll=2, fade=2)
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [f"pan_{n:04d}.exr" for n in range(1, 9)]
    seams = out / ".seams"
    for frame, share in ((3, 1 / 3), (4, 2 / 3)):
        own = pixels(seams / "own", frame)
        after = pixels(seams / "seam_5_2", frame)
        assert np.abs(after - own).mean() > 0.01  # two chains: two patterns
        np.testing.assert_allclose(pixels(out, frame), own + share * (after - own), atol=1e-5)
    # in order, the second chunk carries on from the first: no seam to fade
    in_order = tmp_path / "in_order"
    dream_chunk(pan, in_order, frames=(1, 4), preroll=2, fade=2)
    dream_chunk(pan, in_order, frames=(5, 8), preroll=2, fade=2)
    assert not (in_order / ".seams" / "seam_5_2").exists()


def test_cli_chunks_and_their_mistakes(pan, tmp_path):
    out = tmp_path / "out"
    fast = ["--octaves", "1", "--iterations", "1", "--device", "cpu", "-q", "--temporal", "flow"]
    done = run_cli("dream", str(pan), "-o", str(out), "--frames", "3-4", "--preroll", "2", *fast)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["pan_0003.exr", "pan_0004.exr"]
    for args, words in ((["--frames", "20-30"], "no frames 20-30 in"),
                        (["--frames", "4-2"], "the last frame is before the first"),
                        (["--frames", "x"], "frames must be A-B or A"),
                        (["--preroll", "-1", "--frames", "1-2"], "--preroll must be 0 or more"),
                        (["--frames", "3-4", "--preroll", "2", "--fade", "3"], "--fade 3 needs --preroll 3 or more"),
                        (["--fade", "2", "--preroll", "4"], "--fade needs --frames")):
        bad = run_cli("dream", str(pan), "-o", str(tmp_path / "bad"), *args, *fast)
        assert bad.returncode == 2 and words in bad.stderr, (args, bad.stderr)
    one = run_cli("dream", str(pan / "pan_0001.exr"), "-o", str(tmp_path / "one.exr"), "--frames", "1-2", *fast)
    assert one.returncode == 2 and "--frames takes a folder" in one.stderr


def test_a_chunk_merges_only_the_seams_beside_it(pan, tmp_path):
    """Chunks 3-4 and 7-8 end first (seams at 3 and 7); chunk 1-2 then
    blends frame 2, chunk 5-6 frame 6. The last must leave frame 2 alone:
    a long shot's end does not rewrite its start."""
    out = tmp_path / "out"
    for frames in ((3, 4), (7, 8), (1, 2)):
        dream_chunk(pan, out, frames=frames, preroll=1, fade=1)
    marked = read_image(str(out / "pan_0002.exr"))
    write_image(str(out / "pan_0002.exr"), marked.with_pixels(np.zeros_like(marked.pixels)))
    dream_chunk(pan, out, frames=(5, 6), preroll=1, fade=1)
    assert not pixels(out, 2).any()  # seam 3 was not merged again
    own, after = pixels(out / ".seams" / "own", 6), pixels(out / ".seams" / "seam_7_1", 6)
    np.testing.assert_allclose(pixels(out, 6), own + 0.5 * (after - own), atol=1e-5)
