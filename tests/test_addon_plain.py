"""The add-on's decisions without Blender, in milliseconds: the plain
modules of blender_addon/ (no bpy) loaded as the add-on's package (its
wire/ and shot/ from dream_core, as build.py bundles them) while bpy cannot be
imported. Path rules, farm arguments, render and dream provenance, the
chunk a render job is, summaries and exit status, the one dispatcher of the
worker's messages, and both schedulers (Dream Animation's FrameWalk, Dream
on Render's ChunkDreaming) driven through plain stand-ins for Blender and
for the worker, which dreams synchronously and checks that every frame it
is sent carries on the chain it is at."""
from __future__ import annotations

import importlib
import importlib.util
import os
import queue
import shutil
import socket
import sys
import tempfile
import threading
import time
import types
from types import SimpleNamespace

import numpy as np
import OpenEXR
import pytest
from conftest import ROOT, bundled_packages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

ADDON = os.path.join(ROOT, "blender_addon")
PACKAGE = "dream_renders_plain"
# the add-on's modules that import no bpy (and nothing that does): everything tested here
PLAIN = ("user_errors", "frame_paths", "command_line", "render_records", "dream_provenance", "output_settings",
         "reports", "dispatch", "render_chunk", "frame_walk", "chunk_dreaming", "panel_settings", "dreaming",
         "render_thread", "exr_check", "strengths", "server_link", "installer")
PLAIN += ("live_pacing", "live_worker")  # Live Dream's (tests/test_live_plain.py)
RANDOM = os.environ.get("DREAM_TEST_RANDOM") is not None  # else the same examples every run
QUICK = settings(max_examples=60, deadline=None, database=None, derandomize=not RANDOM)


def _plain_addon() -> types.ModuleType:
    """The add-on package without its ``__init__`` (which registers with
    Blender), ``wire`` and ``shot`` bundled as build.py does; bpy made unimportable while
    the plain modules load, so one that imports it fails here."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    package = types.ModuleType(PACKAGE)
    package.__path__ = [ADDON]
    sys.modules[PACKAGE] = package
    for name in bundled_packages():
        folder = os.path.join(ROOT, "dream_core", name)
        spec = importlib.util.spec_from_file_location(f"{PACKAGE}.{name}", os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])
        bundled = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = bundled
        spec.loader.exec_module(bundled)
    before = sys.modules.get("bpy", ...)
    sys.modules["bpy"] = None  # import bpy raises ImportError
    try:
        for name in PLAIN:
            setattr(package, name, importlib.import_module(f"{PACKAGE}.{name}"))
    finally:
        if before is ...:
            del sys.modules["bpy"]
        else:
            sys.modules["bpy"] = before
    return package


addon = _plain_addon()
paths, args, renders, dreams = addon.frame_paths, addon.command_line, addon.render_records, addon.dream_provenance
reports, chunk, dispatch = addon.reports, addon.render_chunk, addon.dispatch
provenance = importlib.import_module(f"{PACKAGE}.shot.provenance")
frame_plans = importlib.import_module(f"{PACKAGE}.shot.frame_plans")
planner = importlib.import_module(f"{PACKAGE}.shot.planner")
messages = addon.dreaming
UserError = addon.user_errors.UserError
START = provenance.START


def test_the_plain_modules_import_no_bpy():
    for name in PLAIN:
        with open(os.path.join(ADDON, f"{name}.py"), encoding="utf-8") as f:
            source = f.read()
        assert "import bpy" not in source and "from bpy" not in source, name
    assert all(hasattr(addon, name) for name in PLAIN)


# -- paths

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
frames = st.integers(-9999, 10 ** 6)


@QUICK
@given(name=names, frame=frames, kind=st.sampled_from(sorted(paths.KINDS)))
def test_a_pattern_numbered_is_the_frames_file(name, frame, kind):
    """Dream on Render's patterns (``#####``) and Dream Animation's files name a frame alike, in any
    output folder (a ``#`` in a folder's name stays as it is)."""
    for root in ("/out/dream", "/out/shot_#####/dream"):
        file = paths.frame_file(root, name, kind, frame)
        assert paths.numbered(paths.frame_file(root, name, kind, paths.PADDING), frame) == file
        assert os.path.dirname(file) == os.path.join(root, kind) and file.endswith(paths.KINDS[kind])
        assert os.sep not in os.path.basename(file)[:-len(paths.KINDS[kind])].replace(f"{frame:05d}", "")


def test_a_run_renders_frames_and_dreams_into_frames():
    plan = paths.animation_plan("/o", "Shot", range(3, 5), suffix="_still")
    assert [(p.frame, p.source, p.target) for p in plan] == [
        (3, "/o/renders/Shot_00003_still.exr", "/o/frames/Shot_00003_still.png"),
        (4, "/o/renders/Shot_00004_still.exr", "/o/frames/Shot_00004_still.png")]


@pytest.mark.parametrize("rule, target, expected", [
    ("target", "/o/frames/S_00001.png", ("/o/frames/S_00001.png", "png")),
    ("target", "/o/frames/S_00001.JPG", ("/o/frames/S_00001.JPG", "jpeg")),
    ("target", "/o/frames/S_00001.bmp", ("/o/frames/S_00001.bmp", "png")),
    ("shown", "/o/frames/S_00001.png", ("/o/shown/S_00001.png", "png")),
    ("linear", "/o/frames/S_00001.png", ("/o/linear/S_00001.exr", "exr")),
])
def test_where_a_reply_goes(rule, target, expected):
    reply = getattr(paths, f"reply_as_{rule}")
    assert reply(frame_plans.FramePlan(1, "/o/renders/S_00001.exr", target)) == expected


@pytest.mark.parametrize("path, extension, add, expected", [
    ("/o/still_###", ".png", True, "/o/still_###.png"),  # a still's # is not expanded
    ("/o/still.PNG", ".png", True, "/o/still.PNG"),
    ("/o/still", ".png", False, "/o/still"),
    ("/o/a/../still", ".jpg", True, "/o/still.jpg"),
])
def test_where_blender_writes_a_still(path, extension, add, expected):
    assert paths.still_path(path, extension, add) == expected


def test_a_strips_frames_are_dreamed_into_a_folder_named_after_it(tmp_path):
    for name in ("a_01.png", "a_02.png"):
        (tmp_path / name).write_bytes(b"x")
    plan = paths.strip_plan("/o", "my/strip", str(tmp_path), 10, ["a_01.png", "a_02.png"])
    folder = os.path.join("/o", "strips", paths.name_in_path("my/strip"))
    assert [(p.frame, p.source, p.target) for p in plan] == [
        (10, str(tmp_path / "a_01.png"), os.path.join(folder, "a_01.png")),
        (11, str(tmp_path / "a_02.png"), os.path.join(folder, "a_02.png"))]
    with pytest.raises(UserError, match="frame file of strip s is missing: .*a_03.png"):
        paths.strip_plan("/o", "s", str(tmp_path), 1, ["a_01.png", "a_03.png"])


# -- the command line

@pytest.mark.parametrize("argv, expected", [
    (["blender", "-b", "x.blend", "-a"], None),
    (["blender", "-a", "--dream-write-from", "5"], None),  # Blender's own arguments: not ours
    (["blender", "-a", "--", "--dream-write-from", "100"], 100),
    (["blender", "-a", "--", "--other", "--dream-write-from", "-3"], -3),
])
def test_a_farm_chunk_says_where_it_writes_from(argv, expected):
    assert args.write_from_argument(argv) == expected


@pytest.mark.parametrize("argv, words", [
    (["blender", "--", "--dream-write-from"], "--dream-write-from needs a number"),
    (["blender", "--", "--dream-write-from", "x"], "--dream-write-from needs a number"),
    (["blender", "--", "--dream-fade", "3"], "--dream-fade is now the scene's Seam Fade"),
])
def test_a_wrong_farm_argument_is_said(argv, words):
    with pytest.raises(UserError, match=words):
        args.write_from_argument(argv)


@QUICK
@given(start=st.integers(0, 10 ** 6), length=st.integers(0, 1000))
def test_frames_a_b(start, length):
    assert args.frame_range(f"{start}-{start + length}") == (start, start + length)
    assert args.frame_range(str(start)) == (start, start)


@pytest.mark.parametrize("text", ["", "a-b", "1-", "-5", "1-2-3", "1..3"])
def test_frames_that_are_no_range(text):
    if text == "1-":
        assert args.frame_range(text) == (1, 1)  # as the dream command always read it
        return
    with pytest.raises(ValueError, match=r"--frames must look like 1-48, got "):
        args.frame_range(text)


@pytest.mark.parametrize("start, end, expected", [
    (-1, -1, range(1, 25)),  # the scene's range
    (5, -1, range(5, 25)),
    (-1, 3, range(1, 4)),
    (7, 7, range(7, 8)),
])
def test_the_frames_dream_animation_is_asked_for(start, end, expected):
    assert args.run_frames(start, end, 1, 24) == expected


def test_no_frames_is_refused():
    with pytest.raises(UserError, match="the frame range 9-3 is empty"):
        args.run_frames(9, 3, 1, 24)


# -- the panel's settings

panel = addon.panel_settings
PANEL = {"model": " lite0 ", "layer": "", "layer_index": -1, "keep_colors": False, "temporal": "vectors",
         "mix": 1.0, "octaves": 3, "octave_scale": 1.399999976158142, "iterations": 6, "step": 0.009999999776482582,
         "tile": 0, "seed": 0}


def test_the_panels_settings_are_the_dream_settings_offered_there():
    assert set(PANEL) == {s.name for s in panel.PANEL_SETTINGS}
    params = panel.params_of(PANEL)
    assert params["model"] == "lite0" and params["step"] == 0.01 and params["octave_scale"] == 1.4
    assert "layer" not in params and "layer_index" not in params  # the model's default layer
    assert panel.params_of({**PANEL, "layer_index": 4})["layer_index"] == 4
    named = panel.params_of({**PANEL, "layer": " blocks.9 ", "layer_index": 4})
    assert named["layer"] == "blocks.9" and "layer_index" not in named  # a name wins over an index
    assert panel.params_of({**PANEL, "model": "  "})["model"] == panel.BY_NAME["model"].default


@QUICK
@given(value=st.floats(-1e6, 1e6, allow_nan=False, width=32))
def test_a_float_is_sent_as_typed(value):
    typed = panel.as_typed(float(value))
    assert typed == float(f"{float(value):.6g}") and panel.as_typed(typed) == typed  # float32 noise gone, once


def test_the_layer_shown_and_a_preset_left():
    known = {"lite0": ["a", "b", "c"]}
    assert panel.shown_layer(" x ", 1, "lite0", known) == "x"
    assert panel.shown_layer("", 1, "lite0", known) == "b"
    assert panel.shown_layer("", 9, "lite0", known) == "c"  # past the end: the deepest
    assert panel.shown_layer("", -1, "lite0", known) is None and panel.shown_layer("", 1, "vgg16", known) is None
    preset = panel.PRESETS["CLASSIC"]
    assert not panel.leaves_preset({**preset, "step": preset["step"] + 1e-7}, preset)  # float32 storage
    assert panel.leaves_preset({**preset, "octaves": 5}, preset)


# -- renders on disk

TOKEN = {"settings": "s1", "session": "A", "edits": 3, "file": None}


def write_render(path: str, value: float, size: int = 4) -> str:
    """A whole scanline EXR, as our renders are (only its pixels are digested)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    channels = {c: np.full((size, size), value, np.float32) for c in "RGBA"}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
        f.write(path)
    return path


@pytest.mark.parametrize("recorded, now, same", [
    (TOKEN, TOKEN, True),
    ({**TOKEN, "settings": "s2"}, TOKEN, False),  # other render settings: never
    ({**TOKEN, "edits": 4}, TOKEN, False),  # an edit since, and no saved file to vouch
    ({**TOKEN, "edits": 4, "file": "f"}, {**TOKEN, "file": "f"}, True),  # both are that saved file
    ({**TOKEN, "session": "B", "file": "f"}, {**TOKEN, "file": "g"}, False),
    ({**TOKEN, "session": "B", "file": None}, {**TOKEN, "file": None}, False),  # None is no file
    (None, TOKEN, False),
    ("garbage", TOKEN, False),
])
def test_a_render_is_the_scenes_when_its_state_says_so(recorded, now, same):
    assert renders.scene_matches(recorded, now) is same


def test_a_render_is_kept_only_while_current_and_whole(tmp_path):
    records = provenance.Records(str(tmp_path / ".dream"))
    path = str(tmp_path / "renders" / "S_00001.exr")
    verdict = lambda **kw: renders.render_verdict(records, path, TOKEN, **{"rerender": False,  # noqa: E731
                                                                           "needs_cryptomatte": False, **kw})
    assert verdict() == renders.RenderVerdict(None)  # nothing yet: rendered without a word
    write_render(path, 0.5)
    first = verdict()
    assert first.digest is None and first.why == "not one this add-on made, or was changed on disk since"
    assert first.message(1).endswith("rendering it again (and any other frame like it)")
    record = renders.record_render(records, path, 1, TOKEN, "chain", {"mix": 1})
    assert verdict() == renders.RenderVerdict(record.extra["digest"])
    assert verdict(rerender=True) == renders.RenderVerdict(None)  # Render Again: every frame, without a word
    assert verdict(needs_cryptomatte=True).why == "without the Cryptomatte pass the object strengths need"
    assert verdict(needs_cryptomatte=True).message(1).endswith("rendering it again")
    later = renders.render_verdict(records, path, {**TOKEN, "edits": 4}, rerender=False, needs_cryptomatte=False)
    assert later.why == "of the scene before it was changed"
    other = renders.render_verdict(records, path, {**TOKEN, "session": "B"}, rerender=False, needs_cryptomatte=False)
    assert other.why == "from another session, and the .blend is not the one it was made from"
    elsewhere = renders.render_verdict(records, path, {**TOKEN, "settings": "s9"}, rerender=False,
                                       needs_cryptomatte=False)
    assert elsewhere.why == "of other render settings"
    with open(path, "r+b") as f:  # cut short
        f.truncate(os.path.getsize(path) - 10)
    records.write_file(path, record)
    assert verdict().why == "incomplete" and verdict().message(1).endswith("; rendering it again")


def test_a_render_goes_into_place_whole_or_not_at_all(tmp_path):
    partial, path = renders.partial_path(str(tmp_path / "S_00001.exr")), str(tmp_path / "S_00001.exr")
    assert os.path.dirname(partial) == str(tmp_path) and os.path.basename(partial).startswith(".")
    with open(partial, "wb") as f:
        f.write(b"not an exr")
    with pytest.raises(UserError, match="could not write the render of frame 1 to .*: the file is missing"):
        renders.into_place(partial, path, 1)
    assert not os.path.exists(partial) and not os.path.exists(path)
    renders.into_place(write_render(partial, 0.25), path, 1)
    assert renders.is_complete_render(path) and not os.path.exists(partial)


# -- scene writes Blender refuses (render_thread)

class _Refusing:
    """A scene setting Blender refuses to set ``refusals`` times (as while a draw runs or the flag is stuck)."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.value = refusals, None

    def set(self, value) -> None:
        if self.refusals:
            self.refusals -= 1
            raise AttributeError(f"{addon.render_thread.REFUSED}: Scene, Scene data-block, error setting x")
        self.value = value


def test_a_refused_write_on_the_main_thread_frees_the_flag_once_then_gives_up(monkeypatch):
    thread = addon.render_thread
    freed = []
    monkeypatch.setattr(thread, "free_refusal", lambda: freed.append(1))
    write = thread.writes_scene(lambda setting, value: setting.set(value))
    once = _Refusing(1)
    write(once, 3)
    assert once.value == 3 and freed == [1]
    with pytest.raises(AttributeError, match="not allowed"):  # freed and still refused: Blender means it
        write(_Refusing(2), 4)
    with pytest.raises(AttributeError, match="read-only"):  # any other error is the caller's
        thread.writes_scene(lambda: (_ for _ in ()).throw(AttributeError("bpy_prop is read-only")))()


def test_a_refused_write_on_another_thread_is_tried_until_it_goes_through(monkeypatch):
    thread = addon.render_thread
    monkeypatch.setattr(thread, "free_refusal", lambda: pytest.fail("only the main thread frees the flag"))
    setting, done = _Refusing(5), []
    worker = threading.Thread(target=lambda: done.append(thread.writes_scene(setting.set)(7)))
    worker.start()
    worker.join()
    assert setting.value == 7 and done == [None]
    monkeypatch.setattr(thread, "RETRY_FOR", 0.0)
    failed = []

    def refused_for_good():
        try:
            thread.writes_scene(_Refusing(10 ** 9).set)(1)
        except addon.user_errors.UserError as err:
            failed.append(str(err))

    worker = threading.Thread(target=refused_for_good)
    worker.start()
    worker.join()
    assert failed and failed[0].startswith("Blender kept refusing the render thread's change to the scene")


# -- dreams' provenance

@QUICK
@given(intensity=st.floats(-1, 4, allow_nan=False), eight_bit=st.booleans())
def test_only_8bit_files_are_dithered(intensity, eight_bit):
    dither = dreams.dither_for(intensity, eight_bit, "blender4")
    if eight_bit and round(intensity, 6) > 0:
        assert dither == {"intensity": round(intensity, 6), "pattern": "blender4"}
    else:
        assert dither is None


def test_a_dream_of_the_image_as_shown_depends_on_the_view_and_dither():
    params = {"mix": 0.5, "layer": 3}
    assert dreams.dreamed_as(params, None, {"intensity": 1}) is params  # its light: the settings alone
    assert dreams.dreamed_as(params, "agx", None) == {**params, "shown": "agx"}
    assert dreams.dreamed_as(params, "agx", {"intensity": 1}) == {**params, "shown": "agx", "dither": {"intensity": 1}}
    chain = provenance.chain_settings
    assert chain(dreams.dreamed_as(params, "agx", {"intensity": 1})) == chain(dreams.dreamed_as(params, "agx", None))


def test_a_link_is_current_when_its_render_and_settings_are():
    made = provenance.Link(3, "chain", "pixels", START)
    record = provenance.FileRecord("render", "s", extra={"digest": "pixels", "chain": "chain"})
    assert dreams.link_is_current(made, ("pixels", "chain"), None)
    assert not dreams.link_is_current(made, ("pixels", "other"), record)  # visited now: what it is now wins
    assert dreams.link_is_current(made, None, record)
    assert not dreams.link_is_current(made, None, None)
    assert not dreams.link_is_current(made, None, provenance.FileRecord("render", "s", extra={"digest": "x"}))


# -- output settings

def output(fmt="PNG", depth="8", media=None, **more):
    image = {"file_format": fmt, "color_depth": depth, **({"media_type": media} if media else {}), **more}
    return addon.output_settings.OutputSettings("//out/shot_###", True, image, {})


@pytest.mark.parametrize("settings_, exr, eight_bit, movie", [
    (output(), False, True, False),
    (output(depth="16"), False, False, False),
    (output("JPEG", depth=""), False, True, False),
    (output("OPEN_EXR", depth="16"), True, False, False),
    (output("OPEN_EXR_MULTILAYER", depth="32"), True, False, False),
    (output("HDR", depth=""), False, False, False),
    (output("FFMPEG"), False, True, True),
    (output("PNG", media="VIDEO"), False, True, True),  # Blender 5.0 says it with the media type
])
def test_what_a_scenes_output_is(settings_, exr, eight_bit, movie):
    assert (settings_.is_exr, settings_.is_8bit, settings_.is_movie) == (exr, eight_bit, movie)
    assert (chunk.output_problem(settings_) == chunk.MOVIE_ERROR) is movie


def _fake_scene(filepath="//out/x_###", fmt="PNG", layers=("View Layer",)):
    image = SimpleNamespace(file_format=fmt, color_mode="RGBA", color_depth="8")
    render = SimpleNamespace(filepath=filepath, use_file_extension=True, image_settings=image)
    view_layers = [SimpleNamespace(name=n, use_pass_vector=False, use_pass_cryptomatte_object=False) for n in layers]
    return SimpleNamespace(render=render, view_layers=view_layers)


def test_output_settings_come_back_as_they_were():
    user = _fake_scene()
    captured = addon.output_settings.OutputSettings.capture(user)
    ours = _fake_scene("/tmp/job/S_#####.exr", "OPEN_EXR_MULTILAYER")
    ours.view_layers[0].use_pass_vector = True
    captured.apply(ours)
    assert addon.output_settings.OutputSettings.capture(ours) == captured
    assert ours.render.filepath == "//out/x_###" and not ours.view_layers[0].use_pass_vector


# -- what the user is told

def test_a_runs_progress_and_outcome():
    assert reports.run_status(7, 6, 8, 2, 4, 0.5) == "Rendering frame 7, dreaming frame 6 (2 of 4 done, 50%)"
    assert reports.run_status(7, None, 7, 0, 4, 0.0) == "Rendering frame 7 (0 of 4 done, 0%)"
    assert reports.run_status(None, 13, None, 3, 4, 0.8) == "Dreaming frame 13 (3 of 4 done, 80%)"  # scene's 13
    assert reports.run_status(None, None, 2, 1, 4, 0.25) == "Frame 2 next (1 of 4 done, 25%)"
    assert reports.run_status(None, None, None, 4, 4, 1.0) == "Finishing (4 of 4 done, 100%)"
    assert reports.run_summary(dreamed=2, kept=0) == "Done: 2 frame(s) dreamed, 0 already current"
    assert reports.run_summary(dreamed=0, kept=2, rewritten=2) == (
        "Done: 0 frame(s) dreamed, 2 already current (2 written out from the kept dreams: a file missing or of "
        "other settings)")
    assert reports.run_summary(dreamed=1, kept=0, cancelled=True) == \
        "Cancelled after 1 frame(s); run again to resume"
    assert reports.run_summary(dreamed=1, kept=0, cancelled=True, error="boom") == "Failed: boom"
    stopped = reports.run_summary(dreamed=0, kept=0, cancelled=True, stopped="Blender's render of frame 1 ended "
                                  "without its image")
    assert stopped.startswith("Stopped after 0 frame(s): Blender's render of frame 1 ended without its image (")
    assert "the render failed" in stopped and stopped.endswith("run again to resume")


@pytest.mark.parametrize("width, scale", [(300, 1.0), (600, 1.0), (600, 2.0), (60, 1.0)])
def test_a_long_status_is_wrapped_whole_to_the_panels_width(width, scale):
    text = ("Failed: the dream server refused the settings: lite0 has no layer 'block99' (its layers are "
            "block1 to block15); choose one in the Layer menu")
    lines = reports.panel_lines(text, width, scale)
    assert " ".join(lines) == text  # nothing lost
    most = max(20, int((width - reports.LABEL_MARGIN_PX * scale) / (reports.LABEL_CHAR_PX * scale)))
    assert all(len(line) <= most for line in lines) and (len(lines) > 1) == (len(text) > most)


def test_the_header_says_a_long_reason_in_short_and_where_the_rest_is():
    assert reports.header_line("stopped: lost the dream server", "stopped") == "stopped: lost the dream server"
    long = "stopped: the dream server refused the settings: model lite0 has no layer 'x'"
    assert reports.header_line(long, "stopped") == "stopped: see the Dream Renders panel"
    assert len(reports.header_line(long, "not dreamed")) <= 40


def test_a_failure_with_a_log_is_said_in_one_line_with_the_logs_last_line():
    died = ("the dream server exited with status 1 before it was ready; its log ends:\n  Traceback (most recent "
            "call last):\n    import numpy\n  ModuleNotFoundError: No module named 'numpy'\n")
    assert reports.one_line(died) == ("the dream server exited with status 1 before it was ready; its log ends: "
                                      "ModuleNotFoundError: No module named 'numpy'")
    assert reports.one_line("lost the dream server\nmore") == "lost the dream server"
    assert reports.one_line("  ") == ""


def test_a_connection_without_a_token_file_says_where_to_set_one(tmp_path, monkeypatch):
    config = addon.server_link.ServerConfig
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DREAM_SERVER_ADDRESS", "127.0.0.1:1")
    monkeypatch.delenv("DREAM_SERVER_TOKEN_FILE", raising=False)
    assert config.resolve().token_file == ""
    default = tmp_path / "home" / ".dream_renders" / "token"  # where serve keeps it without --token-file
    default.parent.mkdir(parents=True)
    default.write_text("t")
    assert config.resolve().token_file == str(default)
    assert config("CONNECT", address="127.0.0.1:1").problem().startswith("set the server's token file in the add-on")
    missing = str(tmp_path / "token")
    assert config("CONNECT", address="127.0.0.1:1", token_file=missing).problem() == \
        f"the server's token file was not found: {missing}"
    (tmp_path / "token").write_text("t")
    assert config("CONNECT", address="127.0.0.1:1", token_file=missing).problem() == ""
    assert config("CONNECT", address="notanaddress", token_file=missing).problem() == (
        "the dream server's address 'notanaddress' is neither HOST:PORT nor a socket path (the address the server "
        "printed as it started)")


def test_a_refused_token_and_a_closed_connection_are_said_as_such(server, tmp_path):
    """What a user sees when the server is there but will not talk: not a Python exception's name."""
    wrong = tmp_path / "token"
    wrong.write_text("not the server's token")
    wrong.chmod(0o600)
    link = addon.server_link.ServerLink(addon.server_link.ServerConfig("CONNECT", address=server.address,
                                                                       token_file=str(wrong)))
    with pytest.raises(addon.server_link.ConnectionFailed) as refused:
        link.connect(timeout=10)
    assert str(refused.value) == (f"the dream server at {server.address} refused the token in {wrong}: set the "
                                  "token file the server was started with (its --token-file)")
    closing = socket.create_server(("127.0.0.1", 0))  # accepts, then closes without a word
    address = f"127.0.0.1:{closing.getsockname()[1]}"
    closer = threading.Thread(target=lambda: closing.accept()[0].close(), daemon=True)
    closer.start()
    link = addon.server_link.ServerLink(addon.server_link.ServerConfig("CONNECT", address=address,
                                                                       token_file=str(wrong)))
    with pytest.raises(addon.server_link.ConnectionFailed) as closed:
        link.connect(timeout=10)
    closer.join(10)
    closing.close()
    assert str(closed.value) == f"cannot talk to the dream server at {address}: it closed the connection"


def test_a_render_jobs_summary():
    assert reports.render_summary(dreamed=3) == "Dream on Render: 3 frame(s) dreamed"
    assert reports.render_summary(dreamed=1, kept=2, rewritten=1, prerolled=2, merged=[9, 8]) == (
        "Dream on Render: 1 frame(s) dreamed, 2 already current (1 written out from the kept dreams: a file missing "
        "or of other settings) after 2 pre-roll frame(s); cross-faded frame(s) 8, 9 at chunk seams")
    held = reports.render_summary(dreamed=0, waiting=[21, 22])
    assert held.startswith("Dream on Render: 0 frame(s) dreamed; frames 21-22 are dreamed and held for the seam "
                           "with the frames before 21")
    assert reports.render_summary(dreamed=2, cancelled=True) == "Dream on Render cancelled after 2 frame(s)"
    assert reports.render_summary(dreamed=2, cancelled=True, error="x") == "Dream on Render failed: x"


def test_the_server_test_connection_reached():
    info = {"version": "0.9", "device": "cuda:0", "device_info": {"kind": "CUDA", "name": "H100", "memory_gib": 80,
                                                                  "free_memory_gib": 79.5},
            "models": [{"name": "lite0", "offline": True}, {"name": "vgg16"}]}
    assert reports.server_description(info) == \
        "dream server 0.9 on cuda:0 (CUDA: H100, 79.5 of 80 GiB free); models: lite0, vgg16 (download)"
    assert reports.server_description({"version": "0.9", "device": "cpu"}) == "dream server 0.9 on cpu; models: "


def test_a_file_blender_could_not_write_is_said_by_its_cause(tmp_path):
    """Blender's writer says 'Invalid argument' where the folder refuses the
    file: the system is asked, and its answer said; the probe leaves nothing."""
    blender_said = RuntimeError("Error: Could not write image: Invalid argument")
    (tmp_path / "a_file").write_text("")
    assert addon.dreaming.why_not_written(blender_said, str(tmp_path / "a_file" / "f.png.partial")) == \
        "Not a directory"
    writable = tmp_path / "f.png.partial"
    assert addon.dreaming.why_not_written(blender_said, str(writable)) == blender_said.args[0]
    assert not writable.exists()
    assert addon.dreaming.why_not_written(RuntimeError("No space left on device")) == "the disk is full"


def test_a_failure_in_one_line_and_who_ends_blender():
    assert reports.why(UserError("the disk is full")) == "the disk is full"
    assert reports.why(KeyError("Scene")) == "KeyError: 'Scene'"
    assert reports.run_failure_exits(True, True) and not reports.run_failure_exits(True, False)
    assert not reports.run_failure_exits(False, True)
    assert reports.render_failure_exits(True, "/usr/bin/blender")
    assert not reports.render_failure_exits(True, "")  # the bpy module in someone's script
    assert not reports.render_failure_exits(False, "/usr/bin/blender")  # a window is open


# -- the dispatcher

class Note(messages.FrameFailed):
    """A kind of failure a route has no handler of its own for."""


def test_messages_go_to_the_handler_of_their_type():
    seen = []
    box: queue.Queue = queue.Queue()
    d = dispatch.Dispatcher(box, {messages.FrameProgress: lambda m: seen.append(("progress", m.fraction)),
                                  messages.FrameFailed: lambda m: seen.append(("failed", m.describe())),
                                  messages.FrameDone: lambda m: seen.append(("done", m.frame)) or True})
    for message in (messages.FrameProgress(1, 0.5), Note(2, "odd"), messages.RunCancelled(3),
                    messages.FrameDone(1, "t", "w"), messages.FrameProgress(2, 0.1)):
        box.put(message)
    d.drain(finished=lambda: False)
    assert seen == [("progress", 0.5), ("failed", "frame 2: odd"), ("done", 1)]  # cancelled: no handler here
    d.drain(finished=lambda: False)
    assert seen[-1] == ("progress", 0.1) and box.empty()
    assert repr(d) == "Dispatcher(FrameProgress, FrameFailed, FrameDone)"


@QUICK
@given(kinds=st.lists(st.sampled_from(["progress", "done", "failed"]), max_size=12),
       stop_at=st.integers(0, 12))
def test_a_drain_handles_in_order_until_the_route_is_finished(kinds, stop_at):
    box: queue.Queue = queue.Queue()
    make = {"progress": lambda i: messages.FrameProgress(i, 0.5), "done": lambda i: messages.FrameDone(i, "t", "w"),
            "failed": lambda i: messages.FrameFailed(i, "x")}
    for i, kind in enumerate(kinds):
        box.put(make[kind](i))
    handled, before = [], []
    d = dispatch.Dispatcher(box, {messages.FrameProgress: lambda m: handled.append(m.frame),
                                  messages.FrameDone: lambda m: handled.append(m.frame),
                                  messages.FrameFailed: lambda m: handled.append(m.frame)})
    d.drain(finished=lambda: len(handled) >= stop_at, before_each=lambda: before.append(len(handled)))
    assert handled == list(range(min(stop_at, len(kinds))))
    assert before == list(range(len(handled) + (len(handled) < stop_at)))  # before each look at the queue
    assert box.qsize() == len(kinds) - len(handled)


def test_a_drain_waits_within_its_budget_only():
    box: queue.Queue = queue.Queue()
    d = dispatch.Dispatcher(box, {})
    started = time.monotonic()
    d.drain(0.0, finished=lambda: False)
    assert time.monotonic() - started < 0.05
    d.drain(0.1, finished=lambda: False)
    assert 0.09 <= time.monotonic() - started < 1.0
    sent = []

    def three_more():
        if len(sent) < 3:
            sent.append(box.put(messages.RunCancelled(1)))

    d.drain(0.1, finished=lambda: False, before_each=three_more)
    assert len(sent) == 3 and box.empty()  # each one let go (no handler), then none came within the budget


# -- the chunk a render job is

@pytest.mark.parametrize("case, expected", [
    # a window's Render Animation, -a, -f N: every frame rendered is written, no chunk
    (dict(frame=1, end=4, saved=(1, 4, 1), job_start=1, farm=False), dict(frames=(1, 2, 3, 4))),
    (dict(frame=3, end=1, saved=(1, 4, 1), job_start=1, farm=False), dict(frames=(3,), seam_before=3, seam_after=4)),
    # a farm's first chunk, and a later one with its pre-roll and Seam Fade
    (dict(frame=1, end=20, saved=(1, 45, 1), job_start=1, farm=True, seam_fade=5),
     dict(frames=tuple(range(1, 21)), seam_after=21)),
    (dict(frame=11, end=40, saved=(1, 45, 1), job_start=11, farm=True, write_from=21, seam_fade=5),
     dict(frames=tuple(range(21, 41)), warm=tuple(range(11, 21)), held=tuple(range(21, 26)), seam_before=21,
          seam_after=41)),
    # a farm chunk without --dream-write-from starts where the job does
    (dict(frame=21, end=45, saved=(1, 45, 1), job_start=21, farm=True, seam_fade=2),
     dict(frames=tuple(range(21, 46)), held=(21, 22), seam_before=21)),
    # steps of 2: only the shot's frames
    (dict(frame=1, end=9, step=2, saved=(1, 9, 2), job_start=1, farm=False), dict(frames=(1, 3, 5, 7, 9))),
])
def test_the_chunk_a_render_job_is(case, expected):
    plan = chunk.plan_render_job(**{"step": 1, "write_from": None, "seam_fade": 0, **case})
    found = {"frames": plan.frames, "warm": plan.warm, "held": plan.held, "seam_before": plan.seam_before,
             "seam_after": plan.seam_after}
    assert found == {"warm": (), "held": (), "seam_before": None, "seam_after": None, **expected}


def test_writing_from_outside_the_frames_rendered_is_refused():
    with pytest.raises(UserError, match=r"--dream-write-from 50 is outside the frames rendered \(11-40\)"):
        chunk.plan_render_job(11, end=40, step=1, saved=(1, 45, 1), job_start=11, farm=True, write_from=50,
                              seam_fade=0)


@QUICK
@given(saved_start=st.integers(-5, 5), length=st.integers(1, 30), step=st.integers(1, 3), data=st.data())
def test_a_farm_chunk_prerolls_then_writes_holding_its_seam_fade(saved_start, length, step, data):
    saved = (saved_start, saved_start + length - 1, step)
    shot = list(range(saved[0], saved[1] + 1, step))
    job_start = data.draw(st.sampled_from(shot), "job_start")
    end = data.draw(st.integers(job_start, saved[1] + 3), "end")
    rendered = [f for f in range(job_start, end + 1, step)]
    write_from = data.draw(st.none() | st.sampled_from(rendered), "write_from")
    fade = data.draw(st.integers(0, 4), "fade")
    first = write_from if write_from is not None else job_start
    whole = sorted(set(shot) | set(rendered))
    frames = [f for f in whole if first <= f <= max(job_start, end)]
    if job_start > saved[0] and whole[0] < frames[0] and 0 < len(frames) <= fade and whole[-1] > frames[-1]:
        with pytest.raises(UserError, match="Seam Fade"):  # all held, a seam after: refused
            chunk.plan_render_job(job_start, end=end, step=step, saved=saved, job_start=job_start, farm=True,
                                  write_from=write_from, seam_fade=fade)
        return
    plan = chunk.plan_render_job(job_start, end=end, step=step, saved=saved, job_start=job_start, farm=True,
                                 write_from=write_from, seam_fade=fade)
    assert plan.frames == tuple(f for f in plan.shot if first <= f <= max(job_start, end))
    assert set(plan.order) <= set(rendered) and list(plan.order) == sorted(plan.order)
    assert all(f < first for f in plan.warm) and len(plan.warm) == sum(job_start <= f < first for f in plan.shot) \
        * (job_start > saved[0] or write_from is not None) * (plan.frames[0] > plan.shot[0])
    if job_start == saved[0]:  # the shot's first chunk: nothing held, as a whole shot
        assert plan.held == ()
    else:
        assert plan.held == plan.frames[:fade] and plan.seam_before == plan.frames[0]
    carried = chunk.plan_with_carry(plan)
    assert carried.frames == plan.frames and (carried.warm, carried.held, carried.seam_before) == ((), (), None)
    assert {chunk.frame_role(plan, f) for f in plan.order} <= {"warm", "held", "write"}


@pytest.mark.parametrize("shot_range, loaded, expected", [
    ((1, 45), None, (1, 45, 2)),  # saved in the file
    ((0, -1), (1, 30, 1), (1, 30, 1)),  # never saved with one: as the file was loaded
    ((0, -1), None, (5, 9, 2)),  # nor loaded: the scene's now
])
def test_the_shots_range_as_saved(shot_range, loaded, expected):
    assert chunk.saved_range(shot_range, loaded, (5, 9, 2)) == expected


# -- the schedulers, with stand-ins for Blender and the worker

def content(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class Worker:
    """The dream worker, synchronous: :meth:`dream` dreams what was submitted,
    in order, checking that each frame carries on the sequence where it is
    (from a restored state, or the frame dreamed before); a dream's file
    says which link it is and with what settings (and a blend what it was
    blended into), and the states asked for are kept."""

    IN_FLIGHT = 2

    def __init__(self, reply, records, written_as) -> None:
        self.reply, self.records, self.written_as = reply, records, written_as
        self.messages: queue.Queue = queue.Queue()
        self.todo: list = []
        self.at = None  # the link the server's sequence is at (None: none yet)
        self.cancelled = False
        self.finishes = 0
        self.prepared: list = []
        self.dreamed: list[int] = []  # frames written, in order
        self.replayed: list[int] = []
        self.passing: list[str] = []
        self.refuse = None  # a frame the server refuses

    def submit(self, job) -> None:
        assert not self.cancelled, "a job submitted after a cancel"
        self.todo.append(job)

    def prepare(self, params, width, height) -> None:
        self.prepared.append((width, height))

    def cancel(self) -> None:
        self.cancelled = True

    def finish(self) -> None:
        self.finishes += 1

    def dream(self, limit: int = 10 ** 6) -> None:
        while self.todo and not self.cancelled and limit > 0:
            job = self.todo.pop(0)
            if job.plan.frame == self.refuse and not job.replay:
                self.messages.put(messages.FrameFailed(job.plan.frame, "refused"))
                self.todo.clear()
                return
            if job.starts or self.at is None:
                self.at = job.state.decode() if job.state else START
            if job.link:
                made = self.records.link(job.link)
                assert made is not None and made.after == self.at, (job.plan.frame, made, self.at)
            self.at = job.link
            if job.keep_state:  # as DreamWorker keeps them: a newer state supersedes the passing ones
                self.records.keep_state(job.link, job.link.encode())
                for older in self.passing:
                    self.records.drop_state(older)
                self.passing = [job.link] if job.keep_state == "passing" else []
            if job.replay:
                self.replayed.append(job.plan.frame)
                continue
            written = self.reply(job.plan)[0]
            blend = f" blended into {content(job.blend[0])!r} by {job.blend[1]:.2f}" if job.blend else ""
            write_text(written, f"{job.link} {provenance.digest_of(job.plan.params)}{blend}")
            self.dreamed.append(job.plan.frame)
            limit -= 1
            self.messages.put(messages.FrameDone(job.plan.frame, job.plan.target, written, job.link,
                                                 job.keep_state is not None))


class Display:
    """A colour writer: the user's file is the dream's, with its look."""

    def __init__(self, look: str = "AgX") -> None:
        self.digest = provenance.digest_of(look)
        self.closed = False
        self.writes = 0

    def write(self, dreamed: str, target: str) -> None:
        write_text(target, f"{content(dreamed)} as {self.digest}")
        self.writes += 1

    def close(self) -> None:
        self.closed = True

    release = close


class Shot:
    """A scene as the schedulers see it: each frame's render (a version of
    its pixels) and settings, and the state token that an edit changes."""

    def __init__(self, root: str, frames=range(1, 6)) -> None:
        self.root = root
        self.records = provenance.Records(os.path.join(root, provenance.FOLDER))
        self.versions = {f: 0 for f in frames}
        self.params = {f: {"iterations": 2, "mix": 1.0} for f in frames}
        self.edits = 0
        self.renders: list[int] = []

    def token(self) -> dict:
        return {"settings": "s", "session": "this", "edits": self.edits, "file": None}

    def render(self, frame: int, path: str) -> None:
        write_render(path, self.versions[frame] / 10)
        self.renders.append(frame)


class Run(addon.frame_walk.FrameWalk):
    """Dream Animation as runs.FrameRun carries it out, Blender made plain."""

    def __init__(self, shot: Shot, frames, display=None, every: int = 1, **flags) -> None:
        self.shot = shot
        plans = [replace_params(p, shot.params[p.frame])
                 for p in paths.animation_plan(shot.root, "Shot", frames)]
        pixels = (every - 1) * planner.CHECKPOINT_BYTES // planner.STATE_BYTES_PER_PIXEL + 1
        super().__init__(plans, shot.records, Worker, token=shot.token(), pixels=pixels, display=display, **flags)

    def _render_path(self, frame: int) -> str:
        return paths.frame_file(self.shot.root, "Shot", "renders", frame)

    def _input(self, plan):
        verdict = renders.render_verdict(self.records, plan.source, self.token, rerender=self.rerender,
                                         needs_cryptomatte=False)
        if verdict.digest is not None:
            return verdict.digest, False
        self._say_once(plan.frame, verdict)
        self.worker.prepare(plan.params, 4, 4)
        self.shot.render(plan.frame, plan.source)
        return self._recorded(plan), True

    def go(self, cancel_after: int | None = None, refuse: int | None = None) -> "Run":
        """Ticks until finished, as the blocking operator does, the worker
        dreaming a frame between ticks; ``cancel_after``: Esc once that many
        dreams are in; ``refuse``: the server refuses that frame."""
        self.worker.refuse = refuse
        self.progress_lines = []  # the progress line after each tick
        for _ in range(1000):
            if cancel_after is not None and self.done >= cancel_after:
                self.cancel()
            if self.finished:
                return self
            self.tick()
            self.progress_lines.append(self.status())
            self.worker.dream(limit=1)
        raise AssertionError("the run never finished")


def replace_params(plan, params):
    from dataclasses import replace

    return replace(plan, params=dict(params))


def test_a_run_dreams_then_keeps_what_is_current(tmp_path, capsys):
    shot = Shot(str(tmp_path))
    run = Run(shot, range(1, 4)).go()
    assert (run.error, run.done, run.kept, run.dreams) == (None, 3, 0, 3)
    assert run.worker.dreamed == [1, 2, 3] and shot.renders == [1, 2, 3] and run.worker.finishes == 1
    assert run.targets() == [p.target for p in run.plans] and run.status() == "Finishing (3 of 3 done, 100%)"
    assert run.progress_lines == ["Dreaming frame 1 (0 of 3 done, 0%)", "Dreaming frame 2 (1 of 3 done, 33%)",
                        "Dreaming frame 3 (2 of 3 done, 67%)", "Finishing (3 of 3 done, 100%)"], run.progress_lines
    again = Run(shot, range(1, 4)).go()
    assert (again.kept, again.dreams, again.worker.dreamed, shot.renders) == (3, 0, [], [1, 2, 3])
    shot.edits += 1  # an edit somewhere: every render is made again, and the same pixels keep their dreams
    shot.versions[2] = 1  # frame 2 looks different now
    edited = Run(shot, range(1, 4)).go()
    assert shot.renders[3:] == [1, 2, 3] and edited.worker.dreamed == [2, 3] and edited.kept == 1
    said = [line for line in capsys.readouterr().out.splitlines() if "rendering it again" in line]
    assert said == ["Dream Renders: the render of frame 1 is of the scene before it was changed; rendering it "
                    "again (and any other frame like it)"]  # once a run for each reason
    shot.params[3]["mix"] = 0.5  # how frame 3 is written, not what the chain carries
    mixed = Run(shot, range(1, 4)).go()
    # frame 3's own state superseded frame 2's (a passing one): the dreamer is brought there from the start
    assert mixed.worker.dreamed == [3] and mixed.worker.replayed == [1, 2]
    assert Run(shot, range(1, 4), redream=True).go().worker.dreamed == [1, 2, 3]


def test_a_cancelled_run_resumes_exactly(tmp_path):
    shot = Shot(str(tmp_path))
    cancelled = Run(shot, range(1, 6), every=3).go(cancel_after=2)
    assert cancelled.cancelled and cancelled.done == 2 and cancelled.worker.cancelled
    assert cancelled.targets() == []  # not every frame: the operator places no strip
    resumed = Run(shot, range(1, 6), every=3).go()
    assert resumed.kept == 2 and resumed.worker.dreamed == [3, 4, 5]
    assert resumed.worker.replayed == [1, 2]  # no state kept after frame 2: brought there from the start
    fresh = Shot(str(tmp_path / "fresh"))
    Run(fresh, range(1, 6), every=3).go()
    for frame in range(1, 6):  # the very links an uninterrupted run makes
        name = f"Shot_{frame:05d}.png"
        assert content(os.path.join(shot.root, "frames", name)) == content(os.path.join(fresh.root, "frames", name))


def test_a_refused_frame_fails_the_run_and_says_which(tmp_path):
    run = Run(Shot(str(tmp_path)), range(1, 4)).go(refuse=2)
    assert run.error == "frame 2: refused" and run.worker.cancelled and run.done == 1 and run.finished
    assert run.worker.finishes == 1


def test_colour_managed_dreams_are_written_again_for_a_new_look(tmp_path):
    shot = Shot(str(tmp_path))
    look = Display("AgX")
    run = Run(shot, range(1, 3), display=look).go()
    assert look.writes == 2 and os.path.exists(os.path.join(shot.root, "linear", "Shot_00001.exr"))
    assert content(run.plans[0].target).endswith(f"as {look.digest}")
    filmic = Display("Filmic")
    again = Run(shot, range(1, 3), display=filmic).go()
    assert (again.kept, again.rewritten, again.worker.dreamed, filmic.writes) == (2, 2, [], 2)
    again.close()
    assert filmic.closed and again.display is None
    assert reports.run_summary(dreamed=again.done - again.skipped, kept=again.skipped, rewritten=again.rewritten) \
        == ("Done: 0 frame(s) dreamed, 2 already current (2 written out from the kept dreams: a file missing or of "
            "other settings)")


RUNS: list = []  # (frames, cancelled, dreamed, replayed) of every run: the test did not pass by doing nothing


class Session(RuleBasedStateMachine):
    """Random sequences of what a user does between Dream Animation runs:
    edit a frame's render, change a frame's settings (what the chain
    carries, or only how a frame is written), lose a kept state, run a part
    of the shot (cancelled part way, or dreaming every frame again). After
    every run that finishes, each frame of it is the dream a fresh chain
    makes of the scene as it is now, and exactly the frames whose dream on
    disk was not that one were dreamed."""

    @initialize(every=st.integers(1, 3))
    def a_shot(self, every):
        self.folder = tempfile.mkdtemp(prefix="plain_runs_")
        self.shot = Shot(self.folder)
        self.every = every

    @rule(frame=st.integers(1, 5), version=st.integers(0, 2))
    def edit_a_render(self, frame, version):
        self.shot.edits += 1
        self.shot.versions[frame] = version

    @rule(frame=st.integers(1, 5), iterations=st.integers(1, 2), mix=st.sampled_from([1.0, 0.5]))
    def change_settings(self, frame, iterations, mix):
        self.shot.params[frame] = {"iterations": iterations, "mix": mix}

    @rule(data=st.data())
    def lose_a_state(self, data):
        folder = os.path.join(self.shot.records.root, "states")
        kept = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        if kept:
            os.remove(os.path.join(folder, data.draw(st.sampled_from(kept))))

    @rule(first=st.integers(1, 5), length=st.integers(1, 5), redream=st.booleans(),
          cancel_after=st.none() | st.integers(0, 3))
    def run(self, first, length, redream, cancel_after):
        frames = range(first, min(5, first + length - 1) + 1)
        before = {f: self._on_disk(f) for f in frames}
        run = Run(self.shot, frames, every=self.every, redream=redream).go(cancel_after=cancel_after)
        assert run.error is None, run.error
        RUNS.append((len(frames), run.cancelled, len(run.worker.dreamed), len(run.worker.replayed)))
        if run.cancelled:
            return
        expected = self._fresh_chain(frames)
        for frame in frames:
            assert self._on_disk(frame) == expected[frame], frame
        stale = [f for f in frames if redream or before[f] != expected[f]]
        assert run.worker.dreamed == stale and run.done == len(frames)

    def _on_disk(self, frame):
        """The dream of ``frame`` as the records vouch for it (link, settings, the file's text)."""
        target = paths.frame_file(self.shot.root, "Shot", "frames", frame)
        record = self.shot.records.file(target)
        return None if record is None else (record.link, record.settings, content(target))

    def _fresh_chain(self, frames):
        """What a fresh chain over ``frames`` makes of the scene now."""
        at, found = START, {}
        for frame in frames:
            params = self.shot.params[frame]
            pixels = addon.exr_check.pixel_digest(write_render(os.path.join(self.folder, "reference.exr"),
                                                               self.shot.versions[frame] / 10))
            at = provenance.link(at, frame, provenance.chain_settings(params), pixels)
            settings_ = provenance.digest_of(params)
            found[frame] = (at, settings_, f"{at} {settings_}")
        return found

    @invariant()
    def nothing_half_written(self):
        folder = os.path.join(getattr(self, "folder", ""), "frames")
        if os.path.isdir(folder):
            assert not [n for n in os.listdir(folder) if n.startswith(".")]

    def teardown(self):
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)


def test_random_sessions_keep_every_frame_current_and_dream_only_the_stale():
    test = Session.TestCase
    test.settings = settings(max_examples=int(os.environ.get("DREAM_TEST_EXAMPLES", "40")), stateful_step_count=15,
                             deadline=None, database=None, suppress_health_check=list(HealthCheck),
                             derandomize=not RANDOM)
    test().runTest()
    finished = [r for r in RUNS if not r[1]]
    assert len(finished) >= 40 and any(r[1] for r in RUNS), RUNS  # runs finished, and cancelled
    assert any(r[3] for r in RUNS) and sum(r[2] < r[0] for r in finished) >= 5, RUNS  # replayed, kept


# -- Dream on Render, with Blender made plain

class Frame(SimpleNamespace):
    """What ChunkDreaming passes along as ``scene``: here, the frame Blender renders."""


class RenderJob(addon.chunk_dreaming.ChunkDreaming):
    """One render job, as render_job.RenderDreaming carries it out: the user's
    files go to ``out/shot_NNN.png``; the shot's saved range is ``saved``."""

    def __init__(self, shot: Shot, *, start: int, end: int, saved=(1, 5, 1), farm: bool = False,
                 write_from=None, fade: int = 0) -> None:
        super().__init__("Shot", shot.root, shot.token(), Worker, view=None, exr_output=False, dither=None,
                         write_from=write_from, job_start=start, pixels=1)
        self.shot, self.start, self.end, self.saved, self.farm, self.fade = shot, start, end, saved, farm, fade
        self.display = Display()
        self.said_before_next: list[int] = []

    def _begin(self, scene, frame):
        self.begin(chunk.plan_render_job(frame, end=self.end, step=1, saved=self.saved, job_start=self.start,
                                         farm=self.farm, write_from=self.write_from, seam_fade=self.fade))

    def _dream_params(self, scene):
        return dict(self.shot.params[scene.frame])

    def target_paths(self, scene, frames, still=False):
        if still:
            return [os.path.join(self.shot.root, "out", "still.png")]
        return [os.path.join(self.shot.root, "out", f"shot_{f:03d}.png") for f in frames]

    def _before_next(self, scene, frame):
        self.said_before_next.append(frame)

    def _has_scene(self):
        return True

    def _display_writer(self):
        self.writer = self.display
        return self.writer

    def send_seams(self):
        self._send_seams(None, self.fade)

    def go(self, frames=None) -> "RenderJob":
        """Blender renders ``frames`` (default: the job's range) and ends; the
        job is pumped as a window's timer pumps it, until it is finished."""
        for frame in frames if frames is not None else range(self.start, self.end + 1):
            self.shot.render(frame, paths.numbered(self.job_pattern, frame))
            self.rendered(Frame(frame=frame), frame)
            self.pump()
            self.worker.dream()
        self.job_ended()
        for _ in range(100):
            self.pump()
            if self.finished:
                self.close(in_handler=True)
                return self
            self.worker.dream()
        raise AssertionError("the job never finished")


def written(shot: Shot, frame: int):
    path = os.path.join(shot.root, "out", f"shot_{frame:03d}.png")
    return content(path) if os.path.exists(path) else None


def test_a_render_job_writes_then_keeps_the_users_frames(tmp_path):
    shot = Shot(str(tmp_path))
    job = RenderJob(shot, start=1, end=3).go()
    assert job.summary() == "Dream on Render: 3 frame(s) dreamed" and job.has_news and not job.wrote_no_frame
    assert [written(shot, f) is not None for f in (1, 2, 3)] == [True] * 3 and not os.path.exists(job.job_dir)
    assert job.said_before_next == [1, 2, 3] and job.display.closed
    again = RenderJob(shot, start=1, end=3).go()
    assert again.summary() == "Dream on Render: 0 frame(s) dreamed, 3 already current" and again.worker.dreamed == []
    assert (len(again.written_frames), again.to_write) == (3, 3)  # the panel's progress: 3 of 3 written
    shot.params[2]["mix"] = 0.5
    third = RenderJob(shot, start=1, end=3).go()
    assert third.worker.dreamed == [2] and third.summary() == "Dream on Render: 1 frame(s) dreamed, 2 already current"


def test_a_render_job_ended_before_its_dreams_finishes_them_beside_the_next(tmp_path):
    """A window's render ends before its last dreams are back; a next render
    of other frames starts meanwhile: both jobs' frames are written. One
    that renders the same frames again takes them over."""
    shot = Shot(str(tmp_path))
    first = RenderJob(shot, start=1, end=3)
    assert first.to_write == 0  # Blender has not begun a frame: the panel says it waits for the first
    for frame in (1, 2, 3):
        shot.render(frame, paths.numbered(first.job_pattern, frame))
        first.rendered(Frame(frame=frame), frame)
        assert first.to_write == 3  # the chunk's frames, from its first on
    first.job_ended()  # Blender's render is over; nothing dreamed yet
    first.pump()
    assert first.unwritten == [1, 2, 3] and not first.finished
    assert first.outlives_its_render({4, 5}) and not first.outlives_its_render({3, 4})
    second = RenderJob(shot, start=4, end=5, saved=(1, 5, 1)).go()
    assert second.summary() == "Dream on Render: 2 frame(s) dreamed"
    for _ in range(10):
        first.worker.dream()
        first.pump()
    assert first.finished and first.unwritten == [] and first.summary() == "Dream on Render: 3 frame(s) dreamed"
    assert [written(shot, f) is not None for f in (1, 2, 3, 4, 5)] == [True] * 5
    assert not first.outlives_its_render(set())  # finished: nothing left to write
    assert reports.frames_text([7, 1, 2, 3, 5]) == "1-3, 5, 7"
    assert reports.render_progress(1, 3) == "Dream on Render: 1 of 3 frame(s) written, the rest on their way"
    assert reports.render_progress(0, 0) == "Dream on Render: waiting for Blender's first frame"


def test_a_still_and_a_render_that_writes_nothing(tmp_path):
    shot = Shot(str(tmp_path))
    job = RenderJob(shot, start=1, end=5)
    shot.render(2, job.job_pattern)  # a still: the pattern's literal name
    job.rendered(Frame(frame=2), 2)
    job.pump()
    job.worker.dream()
    job.job_ended()
    job.pump()
    assert job.finished and job.summary() == "Dream on Render: 1 frame(s) dreamed"
    assert content(os.path.join(shot.root, "out", "still.png")).startswith(" ")  # no link: a still is alone
    f12 = RenderJob(shot, start=1, end=5)
    f12.job_ended()
    f12.pump()
    assert f12.finished and f12.wrote_no_frame and not f12.has_news


def test_overwrite_off_and_placeholders(tmp_path):
    shot = Shot(str(tmp_path))
    job = RenderJob(shot, start=1, end=3)
    job.begin(chunk.plan_render_job(1, end=3, step=1, saved=(1, 3, 1), job_start=1, farm=False, write_from=None,
                                    seam_fade=0))
    existing = job.target_path(None, 2)
    write_text(existing, "someone's")
    job.leave_alone([1, 2], job.target_paths(None, [1, 2]))
    assert os.path.getsize(paths.numbered(job.job_pattern, 2)) == 0  # Blender skips it, as its own rule would
    assert not os.path.exists(paths.numbered(job.job_pattern, 1))
    assert job.needs_placeholder(1)
    job.place_holder(job.target_path(None, 1))
    job.place_holder(existing)  # another machine's: left alone
    assert job.placeholders == [job.target_path(None, 1)]
    job.job_ended(cancelled=True)
    assert not os.path.exists(job.target_path(None, 1)) and content(existing) == "someone's"
    assert job.finished and job.worker.cancelled


def test_farm_chunks_carry_on_or_cross_fade_whichever_ends_second(tmp_path):
    """Frames 1-4 in two farm tasks (1-2, then 3-4 with one pre-roll frame and
    a Seam Fade of 1), in either order."""
    def task(shot, second):
        if second:
            return RenderJob(shot, start=2, end=4, saved=(1, 4, 1), farm=True, write_from=3, fade=1).go()
        return RenderJob(shot, start=1, end=2, saved=(1, 4, 1), farm=True, fade=1).go()

    in_order = Shot(str(tmp_path / "in_order"))
    task(in_order, False)
    second = task(in_order, True)
    assert second.carries_on and second.prerolled == 0 and second.worker.dreamed == [3, 4]
    assert second.worker.replayed == []  # the state the first kept at its end
    fresh = Shot(str(tmp_path / "fresh"))
    RenderJob(fresh, start=1, end=4, saved=(1, 4, 1)).go()
    assert [written(in_order, f) for f in range(1, 5)] == [written(fresh, f) for f in range(1, 5)]

    reversed_ = Shot(str(tmp_path / "reversed"))
    later = task(reversed_, True)
    assert not later.carries_on and later.prerolled == 1 and later.waiting == [3]
    assert written(reversed_, 3) is None and "frames 3-3 are dreamed and held" in later.summary()
    earlier = task(reversed_, False)
    assert earlier.merged == [3] and "cross-faded frame(s) 3 at chunk seams" in earlier.summary()
    assert " blended into " in written(reversed_, 3) and written(reversed_, 4) is not None
    rerun = task(reversed_, True)  # a retried task carries on now, its seam blended into that chain: all kept
    assert rerun.carries_on and rerun.worker.dreamed == [] and rerun.waiting == []
    assert rerun.summary() == "Dream on Render: 0 frame(s) dreamed, 2 already current"


def run_tasks(shot: Shot, tasks, fade: int) -> list:
    jobs = []
    for start, end, write_from in tasks:
        job = RenderJob(shot, start=start, end=end, saved=(1, 5, 1), farm=True, write_from=write_from, fade=fade).go()
        assert job.error is None, job.error
        jobs.append(job)
    return jobs


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck),
          derandomize=not RANDOM)
@given(size=st.integers(1, 3), preroll=st.integers(0, 2), data=st.data())
def test_farm_tasks_in_any_order_write_every_frame(tmp_path_factory, size, preroll, data):
    """The shot planner's farm tasks (shot.planner.farm_tasks, as the Flamenco
    job type makes them) run one after another in any order, with a Seam
    Fade shorter than a chunk: every frame of the shot is written (each seam
    by whichever of its two chunks ends second); retried in the shot's
    order they carry on from each other, and a second retry finds every
    frame current."""
    fade = data.draw(st.integers(0, size - 1), "fade")
    shot = Shot(str(tmp_path_factory.mktemp("farm")))
    tasks = planner.farm_tasks(range(1, 6), size, preroll)
    run_tasks(shot, data.draw(st.permutations(tasks), "order"), fade)
    assert [written(shot, f) is not None for f in range(1, 6)] == [True] * 5
    run_tasks(shot, tasks, fade)
    for job in run_tasks(shot, tasks, fade):
        assert job.worker.dreamed == [] and job.waiting == [], job.summary()


def test_a_chunk_no_longer_than_the_seam_fade_is_refused_unless_it_ends_the_shot():
    """A chunk whose every frame waits for the chunk before leaves the seam after it with nothing of its
    chain to blend (run out of order, that frame was never written, yet the summary said it would be):
    such a chunk is refused with the fix in the message, in any order; the shot's first and last are not."""
    def plan(start):
        return chunk.plan_render_job(start, end=start, step=1, saved=(1, 5, 1), job_start=start, farm=True,
                                     write_from=start, seam_fade=1)

    for start in (2, 3, 4):
        with pytest.raises(UserError, match=r"Seam Fade \(1\) must be shorter .* lower the Seam Fade"):
            plan(start)
    assert plan(1).held == () and plan(5).held == (5,)

