"""The add-on driven by random sequences of what a user does (hypothesis'
RuleBasedStateMachine, inside the bpy 5.0.1 module): edit the scene, change
a setting, Dream Animation, Re-dream, a scripted still, Render Animation
with Dream on Render (Overwrite on or off), a farm chunk, delete an output
frame, kill the server. After every run, each frame it delivered must be
the frame a fresh, uninterrupted run of the scene as it is now makes
(which at mix 0 is Blender's own frame). Run like blender_scenarios.py;
prints one RESULT line: the steps taken, or the shortest failing sequence."""
import os
import shutil
import sys
import tempfile

import bpy
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib  # noqa: E402

from blender_scenarios import pixel_diff, run_main, set_output, visible  # noqa: E402
from stale_scenarios import tiny  # noqa: E402

FRAMES = (1, 2, 3)
SAME = 1.01 / 255
LOG: list = []


class UserSession(RuleBasedStateMachine):
    """One Blender session on one shot; ``version`` counts the states of the
    scene and its settings, references are made once per state."""

    @initialize()
    def open_the_shot(self):
        self.work = tempfile.mkdtemp(prefix="stateful_", dir=os.environ["DREAM_TEST_WORK"])
        self.scene, self.module = tiny(self.work)
        self.scene.dream.seam_fade = 0
        set_output(self.scene, "//out/shot_###", "png8")
        bpy.ops.wm.save_mainfile()  # the shot's range is saved with it (a farm renders chunks of it)
        self.version = 0
        self.references: dict = {}
        LOG.append("--- a new session")

    # -- what a user changes
    @rule(name=st.sampled_from(["Cube", "Sphere", "Torus"]), dz=st.sampled_from([-0.4, 0.4]))
    def move(self, name, dz):
        bpy.data.objects[name].location.z += dz
        self._changed(f"move {name} {dz:+}")

    @rule(colour=st.sampled_from([(0.9, 0.1, 0.1, 1.0), (0.1, 0.2, 0.9, 1.0)]))
    def recolour(self, colour):
        bpy.data.materials["m0"].node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = colour
        self._changed(f"recolour {colour}")

    @rule(mix=st.sampled_from([0.0, 1.0]), iterations=st.sampled_from([1, 2]))
    def settings(self, mix, iterations):
        self.scene.dream.mix, self.scene.dream.iterations = mix, iterations
        self._changed(f"mix {mix}, iterations {iterations}")

    def _changed(self, what: str) -> None:
        self.version += 1
        LOG.append(what)

    # -- runs, each checked against a fresh run of the scene as it is now
    @rule(redream=st.booleans(), rerender=st.booleans())
    def dream_animation(self, redream, rerender):
        LOG.append(f"Dream Animation redream={redream} rerender={rerender}")
        bpy.ops.dream.render_animation(redream=redream, rerender=rerender)
        folder = os.path.join(self.work, "dream", "frames")
        for frame in FRAMES:
            self._check(os.path.join(folder, f"Scene_0000{frame}.png"), frame, FRAMES[0])

    @rule(overwrite=st.booleans())
    def render_animation(self, overwrite):
        """Render Animation with Dream on Render. Overwrite off: Blender
        leaves the files there alone and renders from the first missing one,
        which carries on the chain before it when that is current, else
        starts one of its own; either is a dream of the scene as it is now."""
        LOG.append(f"Render Animation, Dream on Render, overwrite={overwrite}")
        rendered = [f for f in FRAMES if overwrite or not os.path.exists(self._out_file(f))]
        self._render(FRAMES[0], FRAMES[-1], overwrite)
        if rendered:
            self._check_chain(rendered)

    @rule(first=st.sampled_from(FRAMES[1:]))
    def farm_chunk(self, first):
        """``-s first -e last -a``: carries on from the frame before when it is
        current (then it is the uninterrupted shot), else a chain of its own."""
        LOG.append(f"farm chunk {first}-{FRAMES[-1]}")
        self._render(first, FRAMES[-1], True)
        self._check_chain(list(range(first, FRAMES[-1] + 1)))

    @rule(frame=st.sampled_from(FRAMES))
    def scripted_still(self, frame):
        """``render(write_still=True)`` with Dream on Render: the frame dreamed alone."""
        LOG.append(f"scripted still of frame {frame}")
        self.scene.dream.on_render = True
        self.scene.frame_set(frame)
        bpy.ops.render.render(write_still=True)
        self.scene.dream.on_render = False
        self._check(os.path.join(self.work, "out", "shot_###.png"), frame, frame)

    @precondition(lambda self: self._out_files())
    @rule(data=st.data())
    def delete_output(self, data):
        name = data.draw(st.sampled_from(sorted(self._out_files())))
        LOG.append(f"delete out/{name}")
        os.remove(os.path.join(self.work, "out", name))

    @rule()
    def kill_server(self):
        link = importlib.import_module(f"{self.module}.server_link")._LINK
        if link is not None and link.process is not None and link.process.alive():
            LOG.append("kill the server")
            link.process.process.kill()
            link.process.process.wait()

    # -- helpers
    def _render(self, first, last, overwrite):
        scene = self.scene
        scene.dream.on_render, scene.render.use_overwrite = True, overwrite
        scene.frame_start, scene.frame_end = first, last
        try:
            bpy.ops.render.render(animation=True)
        finally:
            scene.frame_start, scene.frame_end = FRAMES[0], FRAMES[-1]
            scene.dream.on_render, scene.render.use_overwrite = False, True
        summary = importlib.import_module(f"{self.module}.on_render").last_summary
        assert "failed" not in summary, summary

    def _out_files(self):
        folder = os.path.join(self.work, "out")
        return [n for n in visible(folder) if "#" not in n] if os.path.isdir(folder) else []

    def _out_file(self, frame):
        return os.path.join(self.work, "out", f"shot_{frame:03d}.png")

    def _check_chain(self, frames):
        """The frames one run wrote in out/: of the uninterrupted shot, or of
        a chain that starts at the first of them (a chunk's own), all alike."""
        failures = []
        for start in (FRAMES[0], frames[0]):
            try:
                for frame in frames:
                    self._check(self._out_file(frame), frame, start)
                return
            except AssertionError as err:
                failures.append(str(err))
        raise AssertionError(" / ".join(failures))

    def _check(self, path, frame, start):
        """``path`` is the frame a fresh run from ``start`` of the scene as it is now makes."""
        reference = self._reference(frame, start)
        assert os.path.exists(path), f"{path} was not written"
        diff = pixel_diff(reference, path)
        assert diff["max"] <= SAME, f"{os.path.basename(path)} is not frame {frame} of a fresh run: {diff}"

    def _reference(self, frame, start):
        key = (self.version, start)
        if key not in self.references:
            scene, folder = self.scene, tempfile.mkdtemp(prefix="fresh_", dir=self.work)
            kept = scene.dream.output_dir
            scene.dream.output_dir = folder + os.sep
            try:
                bpy.ops.dream.render_animation(frame_start=start, frame_end=FRAMES[-1])
            finally:
                scene.dream.output_dir = kept
            self.references[key] = os.path.join(folder, "frames")
        return os.path.join(self.references[key], f"Scene_0000{frame}.png")

    def teardown(self):
        shutil.rmtree(getattr(self, "work", ""), ignore_errors=True)


def scenario_stateful(workdir, zip_path):
    os.environ["DREAM_TEST_WORK"] = workdir
    os.environ["DREAM_TEST_ZIP"] = zip_path
    examples = int(os.environ.get("DREAM_TEST_EXAMPLES", "3"))
    steps = int(os.environ.get("DREAM_TEST_STEPS", "12"))
    test = UserSession.TestCase
    test.settings = settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                             derandomize=os.environ.get("DREAM_TEST_RANDOM") is None,
                             suppress_health_check=list(HealthCheck), database=None)
    import unittest

    outcome = unittest.TextTestRunner(stream=sys.stdout, verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(test))
    failures = [str(f[1])[-3000:] for f in outcome.failures + outcome.errors]
    return {"passed": outcome.wasSuccessful(), "failures": failures, "steps": len(LOG), "log": LOG[-60:]}


if __name__ == "__main__":
    run_main(globals())
