"""The command line's chunks driven by random sequences of what a user or a
farm does (hypothesis' RuleBasedStateMachine, in this process with a real
model at 32x48): render frames again (a source changes), run a chunk, a run
killed part way, the whole shot, an output deleted. After every run, each
frame it wrote is the frame a fresh run makes of the sources as they are
now: of the uninterrupted shot, or (a chunk that could not carry on) of a
chain that starts at the chunk's first frame."""
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from test_chunks import Dies, Killed

from dream_core.batch.local import LocalBackend
from dream_core.batch.run import run_batch
from dream_core.config import DreamConfig, DreamSettings
from dream_core.io import Picture, read_image, write_image
from dream_core.io.sequences import list_frames, plan_frames

FRAMES = range(1, 7)
SETTINGS = DreamSettings(temporal="flow", config=DreamConfig(octaves=1, iterations=1, step=0.05, seed=1))
BACKEND = {}
STEPS = []  # the rules run: the test checks that it did not pass by doing nothing


def backend():
    if "b" not in BACKEND:
        BACKEND["b"] = LocalBackend(SETTINGS, device="cpu")
    return BACKEND["b"]


def picture(seed: int, frame: int) -> Picture:
    """A smooth picture panning 2 px a frame; ``seed`` is what the renderer drew."""
    rng = np.random.default_rng(seed)
    import cv2

    wide = cv2.resize(rng.random((4, 8, 3)).astype(np.float32), (64, 32), interpolation=cv2.INTER_CUBIC)
    return Picture(np.ascontiguousarray(wide[:, 2 * frame:2 * frame + 48].clip(0, 1)), True, "float32")


class FarmSession(RuleBasedStateMachine):
    @initialize()
    def a_rendered_shot(self):
        self.root = tempfile.mkdtemp(prefix="chunks_")
        self.sources, self.out = os.path.join(self.root, "renders"), os.path.join(self.root, "out")
        self.seeds = {frame: 0 for frame in FRAMES}
        for frame in FRAMES:
            self._render(frame)
        self.references: dict = {}

    def _render(self, frame):
        write_image(os.path.join(self.sources, f"shot_{frame:04d}.exr"), picture(self.seeds[frame], frame))

    @rule(frame=st.sampled_from(FRAMES), seed=st.integers(0, 2))
    def render_again(self, frame, seed):
        self.seeds[frame] = seed  # the same seed: the same pixels, a new file
        self._render(frame)

    @rule(first=st.sampled_from(FRAMES), length=st.integers(1, 6), preroll=st.integers(0, 2))
    def chunk(self, first, length, preroll):
        last = min(first + length - 1, FRAMES[-1])
        self._run(frames=(first, last), preroll=preroll)
        self._check(range(first, last + 1), max(FRAMES[0], first - preroll))

    @rule()
    def whole_shot(self):
        self._run()
        self._check(FRAMES, FRAMES[0])

    @rule(first=st.sampled_from(FRAMES), after=st.integers(0, 4))
    def killed_chunk(self, first, after):
        try:
            self._run(frames=(first, FRAMES[-1]), dreamer=Dies(after))
        except Killed:
            pass

    @rule(frame=st.sampled_from(FRAMES))
    def delete_output(self, frame):
        path = os.path.join(self.out, f"shot_{frame:04d}.exr")
        if os.path.exists(path):
            os.remove(path)

    def _run(self, frames=None, preroll=0, dreamer=None):
        STEPS.append((frames, preroll, dreamer is not None))
        plans = plan_frames(list_frames(self.sources), self.out, None)
        return run_batch(plans, dreamer or backend(), quiet=True, frames=frames, preroll=preroll)

    def _check(self, frames, own_start):
        """The frames a run wrote are of the uninterrupted shot, or all of the
        chunk's own chain (from ``own_start``: its pre-roll's first frame),
        made of the sources as they are now."""
        frames = list(frames)
        written = {f: read_image(os.path.join(self.out, f"shot_{f:04d}.exr")).pixels for f in frames}
        for start in dict.fromkeys((FRAMES[0], own_start)):
            reference = self._reference(start)
            if all(np.array_equal(written[f], reference[f]) for f in frames):
                return
        raise AssertionError(f"frames {frames[0]}-{frames[-1]} are not a fresh run's of the renders as they are")

    def _reference(self, start):
        key = (tuple(sorted(self.seeds.items())), start)
        if key not in self.references:
            folder = tempfile.mkdtemp(dir=self.root)
            plans = plan_frames(list_frames(self.sources), folder, None)
            run_batch([p for p in plans if p.frame >= start], backend(), quiet=True)
            self.references[key] = {p.frame: read_image(p.target).pixels for p in plans if p.frame >= start}
        return self.references[key]

    def teardown(self):
        shutil.rmtree(getattr(self, "root", ""), ignore_errors=True)


@pytest.mark.slow
def test_chunks_runs_and_kills_in_any_order_write_only_current_frames():
    test = FarmSession.TestCase
    test.settings = settings(max_examples=int(os.environ.get("DREAM_TEST_EXAMPLES", "12")), stateful_step_count=12,
                             deadline=None, derandomize=os.environ.get("DREAM_TEST_RANDOM") is None, database=None,
                             suppress_health_check=list(HealthCheck))
    test().runTest()
    assert len(STEPS) >= 30 and any(killed for _, _, killed in STEPS), STEPS
