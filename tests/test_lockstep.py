"""Chunks of one shot dreamed in lockstep (``dream --lockstep K``): each
chain keeps its own carried state, and its frames come out as dreamed
alone; the batch runner plans, writes, records and resumes as it does for
chunks dreamed one after the other."""
import numpy as np
import pytest

from dream_core.batch.local import LocalBackend
from dream_core.batch.run import run_batch
from dream_core.batch.side_by_side import run_in_lockstep
from dream_core.config import DreamConfig, DreamSettings
from dream_core.frame.lockstep import NextFrame, dream_together
from dream_core.frame.pipeline import SequenceDreamer
from dream_core.io import read_image
from dream_core.io.sequences import list_frames, plan_frames
from dream_core.shot.provenance import Records
from dream_core.tools.bench_gpu import panning_shot

SHORT = DreamSettings(temporal="vectors", config=DreamConfig(octaves=2, iterations=2))


def test_chains_dreamed_in_lockstep_come_out_as_dreamed_alone(lite0):
    """Three chains of three frames (a pan with its Vector pass): alone, and
    each frame of the three as one batch. The same frames, up to float
    rounding (a short dream: over many steps the ascent carries rounding on
    to other detail of the same strength); and exactly the same in any
    order in a batch of one size."""
    shot = panning_shot(64, 48, 9)
    chains = [shot[0:3], shot[3:6], shot[6:9]]
    alone = []
    for chain in chains:
        sequence = SequenceDreamer()
        alone.append([sequence.dream(lite0, picture, SHORT, frame=n).pixels for n, picture in enumerate(chain, 1)])

    def in_lockstep(order, batch):
        sequences = [SequenceDreamer() for _ in order]
        out = {i: [] for i in order}
        for n in range(3):
            frames = [NextFrame(s, chains[i][n], n + 1) for s, i in zip(sequences, order)]
            for i, picture in zip(order, dream_together(lite0, frames, SHORT, batch=batch)):
                out[i].append(picture.pixels)
        return out

    together = in_lockstep([0, 1, 2], 3)
    for i in range(3):
        for n in range(3):
            # within a step of an 8-bit file (measured: at most 0.0024)
            assert np.abs(together[i][n].astype(np.float32) - alone[i][n].astype(np.float32)).max() < 1 / 255, (i, n)
    shuffled = in_lockstep([2, 0], 3)  # other partners, another place, the batch filled to 3
    for i in (0, 2):
        for n in range(3):
            np.testing.assert_array_equal(shuffled[i][n], together[i][n])


SETTINGS = DreamSettings(temporal="flow", config=DreamConfig(octaves=2, iterations=3, step=0.03, seed=1))
BACKENDS = {}


def backend(lockstep=2):
    if lockstep not in BACKENDS:
        BACKENDS[lockstep] = LocalBackend(SETTINGS, device="cpu", lockstep=lockstep)
    return BACKENDS[lockstep]


class Killed(Exception):
    pass


class Dies(LocalBackend):
    """The lockstep backend, killed after ``after`` batches."""

    def __init__(self, after: int) -> None:
        self.__dict__.update(backend().__dict__)
        self.after = after

    def dream_many(self, nexts, progress=None):
        if self.after == 0:
            raise Killed()
        self.after -= 1
        return super().dream_many(nexts, progress)


def plans_of(pan, out):
    return plan_frames(list_frames(str(pan)), str(out), None)


def written(out):
    records = Records.beside(str(out))
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    return {name: (read_image(str(out / name)).pixels, records.file(str(out / name)).made) for name in files}


@pytest.mark.slow
def test_a_shot_in_lockstep_is_its_chunks_one_after_the_other_and_resumes_exactly(pan, tmp_path):
    """Two chunks side by side write what the same chunks write one after
    the other (the later chunk first: a seam pre-rolled and faded), the
    same records; killed and run again, the same frames."""
    side = tmp_path / "side"
    result = run_in_lockstep(plans_of(pan, side), backend(), 2, quiet=True, preroll=1, fade=2)
    assert (result.done, result.skipped, result.waiting) == (8, 0, ())
    apart = tmp_path / "apart"
    for frames in ((5, 8), (1, 4)):
        run_batch(plans_of(pan, apart), backend(), quiet=True, frames=frames, preroll=1, fade=2)
    expected = written(apart)
    assert [made for _, made in expected.values()] == ["dream"] * 4 + ["blend"] * 2 + ["dream"] * 2
    got = written(side)
    assert got.keys() == expected.keys()
    for name, (pixels, made) in expected.items():
        np.testing.assert_array_equal(got[name][0], pixels)
        assert got[name][1] == made
    assert run_in_lockstep(plans_of(pan, side), backend(), 2, quiet=True, preroll=1, fade=2).done == 0
    killed = tmp_path / "killed"
    for after in (2, 1):
        with pytest.raises(Killed):
            run_in_lockstep(plans_of(pan, killed), Dies(after), 2, quiet=True, preroll=1, fade=2)
    resumed = run_in_lockstep(plans_of(pan, killed), backend(), 2, quiet=True, preroll=1, fade=2)
    assert resumed.done + resumed.skipped == 8, resumed  # each frame counted once, a seam's merged frames too
    for name, (pixels, made) in written(killed).items():
        np.testing.assert_array_equal(pixels, expected[name][0])
        assert made == expected[name][1]


def test_lockstep_needs_a_folder_in_this_process(pan, tmp_path):
    from conftest import cli

    bad = cli("dream", str(pan / "pan_0001.exr"), "-o", str(tmp_path / "x.exr"), "--lockstep", "2")
    assert bad.returncode != 0 and "--lockstep" in bad.stderr
    many = cli("dream", str(pan), "-o", str(tmp_path / "out"), "--lockstep", "5")  # 8 frames
    assert many.returncode == 2 and "it needs 10 frames or more, these are 8" in many.stderr, many.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("frames,chunks", [(10, 4), (9, 4), (8, 4), (40, 3), (7, 1)])
def test_lockstep_cuts_a_shot_into_k_chunks_of_near_equal_length(frames, chunks):
    """K chunks whatever the count (runs of ceil(n / K) frames made 3 of 9 frames with K=4, and a
    1-frame last chunk of 10), each one frame longer than another at most, covering the shot once."""
    from dream_core.batch.side_by_side import even_ranges
    from dream_core.shot.frame_plans import FramePlan

    plans = [FramePlan(n, f"in_{n}.png", f"out_{n}.png") for n in range(3, 3 + frames)]
    ranges = even_ranges(plans, chunks)
    lengths = [last - first + 1 for first, last in ranges]
    assert len(ranges) == chunks and max(lengths) - min(lengths) <= 1 and sum(lengths) == frames
    assert ranges[0][0] == 3 and ranges[-1][1] == 2 + frames
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:]))
