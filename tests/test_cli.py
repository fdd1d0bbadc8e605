import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, cli, run_cli, visible, write_token_file

from dream_core.io import Picture, read_image, write_image

FAST = ["--octaves", "1", "--iterations", "1", "--device", "cpu", "-q"]


@pytest.fixture()
def frames(tmp_path, coffee):
    folder = tmp_path / "renders"
    for n in (1, 2, 10):  # frame 10 must sort after 2
        write_image(str(folder / f"shot{n:04d}.png"), Picture(np.roll(coffee, n, 1), False, "uint8"))
    return folder


def test_dream_one_file(tmp_path, coffee):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    write_image(str(src), Picture(coffee, False, "uint16"))
    result = cli("dream", str(src), "-o", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    dreamed = read_image(str(out))
    assert dreamed.dtype == "uint16" and dreamed.pixels.shape == coffee.shape
    assert np.abs(dreamed.pixels - coffee).mean() > 0.001
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]  # a lone image leaves no records


def test_dream_folder_resumes_and_keeps_sources(frames, tmp_path):
    out = tmp_path / "dreamed"
    before = {p.name: p.read_bytes() for p in frames.iterdir()}
    first = cli("dream", str(frames), "-o", str(out), *FAST)
    assert first.returncode == 0, first.stderr
    assert visible(out) == ["shot0001.png", "shot0002.png", "shot0010.png"]  # records in the hidden .dream
    os.remove(out / "shot0002.png")
    stamp = os.path.getmtime(out / "shot0001.png")
    second = cli("dream", str(frames), "-o", str(out), *FAST)
    assert second.returncode == 0 and "2 already done" in second.stderr
    assert os.path.getmtime(out / "shot0001.png") == stamp  # not redone
    assert (out / "shot0002.png").exists()
    assert {p.name: p.read_bytes() for p in frames.iterdir()} == before


def test_folder_to_exr_format(frames, tmp_path):
    out = tmp_path / "exr"
    assert cli("dream", str(frames), "-o", str(out), "--format", "exr", *FAST).returncode == 0
    assert read_image(str(out / "shot0010.exr")).linear


def _assert_usage_error(code, stderr, *needles):
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dream_core: error:"), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.slow
def test_a_bad_input_in_a_real_process_exits_2_without_traceback(tmp_path):
    result = run_cli("dream", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png"))
    _assert_usage_error(result.returncode, result.stderr, "input not found")


def test_bad_inputs_give_one_line_and_write_nothing(tmp_path, frames, capsys):
    from dream_core.cli import main

    src = str(frames / "shot0001.png")
    out = tmp_path / "never.png"
    (tmp_path / "notes.png").write_text("hello")
    cases = [
        (["dream", str(tmp_path / "missing.png"), "-o", str(out)], ["input not found"]),
        (["dream", str(tmp_path / "notes.png"), "-o", str(out)], ["not a decodable png"]),
        (["dream", src, "-o", str(out), "--model", "alexnet"], ["unknown model", "lite0"]),
        (["dream", src, "-o", str(out), "--layer", "block99"], ["no layer block99", "block9"]),
        (["dream", src, "-o", str(out), "--octaves", "0"], ["octaves must be between"]),
        (["dream", src, "-o", str(out), "--step", "-1"], ["step must be between"]),
        (["dream", src, "-o", src], ["would overwrite the input"]),
        (["dream", str(frames), "-o", str(frames)], ["would overwrite the input"]),
        (["dream", src, "-o", str(tmp_path / "x.gif")], ["unsupported file type .gif"]),
        (["dream", src, "-o", str(out), "--mask", str(tmp_path / "nomask.png")], ["mask image not found"]),
        (["dream", src, "-o", str(out), "--weights", str(tmp_path / "w.pth")], ["weights file not found"]),
        (["dream", src, "-o", str(out), "--threads", "-2"], ["threads must be 0 (automatic) or more"]),
    ]
    for args, needles in cases:
        code = main([*args, "--device", "cpu", "-q"])
        _assert_usage_error(code, capsys.readouterr().err, *needles)
    assert not out.exists()
    assert visible(frames) == ["shot0001.png", "shot0002.png", "shot0010.png"]


def test_help_reads_like_a_man_page():
    top = cli("--help")
    assert top.returncode == 0 and "examples:" in top.stdout and "serve" in top.stdout
    sub = cli("dream", "--help")
    for word in ("--octaves", "--tile", "--keep-colors", "carries on exactly", "examples:"):
        assert word in sub.stdout


@pytest.mark.parametrize("command", [[], ["dream"], ["serve"], ["bench"]])
def test_help_loads_no_torch(command):
    """--help answers at once: parsing needs only the torch-free config."""
    script = ("import sys\nfrom dream_core.cli import main\n"
              f"try:\n    main({command + ['--help']!r})\nexcept SystemExit:\n    pass\n"
              "heavy = sorted(m for m in ('torch', 'numpy', 'cv2', 'OpenEXR') if m in sys.modules)\n"
              "print('loaded:', heavy)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.stdout.strip().endswith("loaded: []"), result.stdout + result.stderr


def test_a_command_ends_without_teardown_yet_as_an_exit_does():
    """``python -m dream_core`` skips Python's teardown (a second of CPU once PyTorch is loaded), not what an
    exit does: a thread pool's work and a thread's last write finish, atexit's handlers run, buffered output
    reaches the pipe, the status is the command's. The default model builds without torchvision (1.3 s)."""
    script = ("import atexit, concurrent.futures, sys, threading, time\n"
              "from dream_core.cli import exit_without_teardown\n"
              "from dream_core.models import get_model\n"
              "get_model('lite0')\n"
              "pool = concurrent.futures.ThreadPoolExecutor(1)\n"
              "pool.submit(time.sleep, 0.2)\n"
              "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\n"
              "atexit.register(print, 'atexit ran')\n"
              "print('torchvision' in sys.modules, end=' ')\n"
              "exit_without_teardown(3)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 3, result.stderr
    assert result.stdout.split() == ["False", "thread", "done", "atexit", "ran"], result.stdout + result.stderr
    if os.path.exists("/dev/full"):  # output that could not be written is a failure, said in one line
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # written at the exit, then
        with open("/dev/full", "w") as full:
            lost = subprocess.run([sys.executable, "-m", "dream_core", "models", "--json"], stdout=full,
                                  stderr=subprocess.PIPE, text=True, timeout=120, env={**env, "PYTHONPATH": ROOT})
        assert lost.returncode == 120, lost.stderr
        assert lost.stderr.strip() == "dream_core: error: could not write the output: No space left on device"


def test_models_lists_layers_and_offline_weights():
    result = cli("models")
    assert result.returncode == 0
    assert "block9*" in result.stdout and "inception4c*" in result.stdout
    assert "lite0" in result.stdout and "weights offline" in result.stdout


def test_folder_with_temporal_flow(frames, tmp_path):
    out = tmp_path / "coherent"
    result = cli("dream", str(frames), "-o", str(out), "--temporal", "flow", *FAST)
    assert result.returncode == 0, result.stderr
    assert len(visible(out)) == 3


def test_mask_file_and_guide_image(tmp_path, coffee):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    write_image(str(src), Picture(coffee, False, "uint8"))
    mask = np.zeros(coffee.shape[:2] + (1,), np.float32)
    mask[:, 64:] = 1.0
    write_image(str(tmp_path / "mask.png"), Picture(mask, False, "uint8"))
    write_image(str(tmp_path / "guide.png"), Picture(np.roll(coffee, 20, 0), False, "uint8"))
    result = cli("dream", str(src), "-o", str(out), "--mask", str(tmp_path / "mask.png"),
                 "--guide", str(tmp_path / "guide.png"), "--octaves", "1", "--iterations", "3", "--device",
                 "cpu", "-q")
    assert result.returncode == 0, result.stderr
    dreamed = read_image(str(out)).pixels
    left = np.abs(dreamed[:, :60] - coffee[:, :60]).mean()
    right = np.abs(dreamed[:, 68:] - coffee[:, 68:]).mean()
    assert left < 0.3 * right


def test_a_resumed_sequence_carries_on_from_the_last_frame_on_disk(frames, tmp_path):
    """Resuming a coherent run: the first missing frame continues from the
    frame before it on disk instead of starting the motion afresh."""
    from dream_core.cli import main

    out = tmp_path / "coherent"
    flags = ["--temporal", "flow", "--octaves", "1", "--iterations", "3", "--device", "cpu", "-q"]
    assert main(["dream", str(frames), "-o", str(out), *flags]) == 0
    whole = read_image(str(out / "shot0010.png")).pixels
    os.remove(out / "shot0010.png")
    assert main(["dream", str(frames), "-o", str(out), *flags]) == 0
    resumed = read_image(str(out / "shot0010.png")).pixels
    alone = tmp_path / "alone.png"
    assert main(["dream", str(frames / "shot0010.png"), "-o", str(alone), *flags]) == 0
    fresh = read_image(str(alone)).pixels
    assert np.abs(resumed - whole).mean() < 0.25 * np.abs(fresh - whole).mean()


def test_two_inputs_for_one_output_are_refused_before_dreaming(tmp_path, coffee):
    folder = tmp_path / "mixed"
    write_image(str(folder / "shot0001.png"), Picture(coffee, False))
    write_image(str(folder / "shot0001.jpg"), Picture(coffee, False))
    result = cli("dream", str(folder), "-o", str(tmp_path / "out"), "--format", "png", *FAST)
    _assert_usage_error(result.returncode, result.stderr, "shot0001.jpg", "shot0001.png", "would both be written")
    assert not (tmp_path / "out").exists()


def test_exr_into_its_own_input_folder_resumes(frames):
    first = cli("dream", str(frames), "-o", str(frames), "--format", "exr", *FAST)
    assert first.returncode == 0, first.stderr
    (frames / "shot0002.exr").unlink()
    again = cli("dream", str(frames), "-o", str(frames), "--format", "exr", *FAST)
    assert again.returncode == 0, again.stderr
    assert "dreamed 1 frame (2 already done" in again.stderr
    assert visible(frames) == [
        "shot0001.exr", "shot0001.png", "shot0002.exr", "shot0002.png", "shot0010.exr", "shot0010.png"]


def test_unwritable_outputs_give_one_line(tmp_path, frames):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = cli("dream", str(frames), "-o", str(blocker / "out"), *FAST)
    _assert_usage_error(result.returncode, result.stderr, "Not a directory")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        result = cli("dream", str(frames), "-o", str(locked), *FAST)
        _assert_usage_error(result.returncode, result.stderr, "Permission denied")


def test_new_output_folders_are_made_where_they_are_named(frames, tmp_path, monkeypatch):
    """A folder not made yet, named as README names it (relative, nested): made; a command refused for another
    reason makes none."""
    monkeypatch.chdir(tmp_path)
    for output in ("dreamed/", "nested/deeper", "./dotted/"):
        result = cli("dream", str(frames), "-o", output, *FAST)
        assert result.returncode == 0, result.stderr
        assert visible(tmp_path / output) == ["shot0001.png", "shot0002.png", "shot0010.png"], output
    lone = cli("dream", str(frames / "shot0001.png"), "-o", "stills/one.png", *FAST)
    assert lone.returncode == 0 and visible(tmp_path / "stills") == ["one.png"], lone.stderr
    refused = cli("dream", str(frames), "-o", "never/", "--preroll", "-1", *FAST)
    assert refused.returncode == 2 and not (tmp_path / "never").exists(), refused.stderr


def test_a_read_only_output_folder_is_said_before_dreaming(small_disk, coffee, tmp_path):
    source = tmp_path / "in.png"
    write_image(str(source), Picture(coffee, False, "uint8"))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        result = cli("dream", str(source), "-o", str(small_disk / "dreamed.png"), *FAST)
        below = cli("dream", str(source), "-o", str(small_disk / "new" / "dreamed.png"), *FAST)  # a folder to make
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    _assert_usage_error(result.returncode, result.stderr,
                        f"cannot write in the output folder {small_disk}: Read-only file system")
    _assert_usage_error(below.returncode, below.stderr,
                        f"cannot write in the output folder {small_disk / 'new'}: Read-only file system")
    for said in (result.stderr, below.stderr):
        assert "dreamed" not in said and "resume" not in said and "partial" not in said


def test_a_failed_write_names_the_file_asked_for(tmp_path, monkeypatch):
    import errno

    from dream_core.shot import atomic

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(OSError) as raised:
        atomic.write_atomically(str(tmp_path / "frame.png"), b"data")
    assert raised.value.filename == str(tmp_path / "frame.png") and raised.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []  # its temporary file is gone


@pytest.fixture()
def small_disk(tmp_path):
    """A real file system that fills up: a 40 KiB tmpfs (needs root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("where", ["here", "server"])
def test_a_full_disk_stops_with_one_line_and_resumes(frames, small_disk, where, request, tmp_path):
    how = []
    if where == "server":
        server = request.getfixturevalue("server")
        how = ["--server", server.address, "--token-file", write_token_file(tmp_path / "token", server.token)]
    before = {p.name: p.read_bytes() for p in frames.iterdir()}
    full = cli("dream", str(frames), "-o", str(small_disk), "--format", "tif", *FAST, *how)
    _assert_usage_error(full.returncode, full.stderr, "No space left on device", "run again to resume")
    kept = visible(small_disk)
    assert len(kept) < 3 and not [p for p in small_disk.rglob(".*partial*")]  # no half-written frame
    for name in kept:
        assert read_image(str(small_disk / name)).pixels.shape == (96, 128, 3)  # every finished frame intact
    assert {p.name: p.read_bytes() for p in frames.iterdir()} == before  # inputs untouched
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    again = cli("dream", str(frames), "-o", str(small_disk), "--format", "tif", *FAST, *how)
    assert again.returncode == 0, again.stderr
    assert len(visible(small_disk)) == 3


def _view(linear: np.ndarray) -> np.ndarray:
    """A view transform of our own: scene light compressed (Reinhard), then sRGB-encoded."""
    x = linear / (1 + linear)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


@pytest.fixture()
def exr_shot(tmp_path, coffee):
    """EXR renders of scene light (highlights past 1) and the PNGs a viewer shows of them."""
    renders, shown = tmp_path / "renders", tmp_path / "shown"
    for n in (1, 2, 3):
        srgb = np.roll(coffee, 4 * n, 1).astype(np.float32)
        linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4) * 3
        write_image(str(renders / f"shot{n:04d}.exr"), Picture(linear.astype(np.float32), True, "float32"))
        write_image(str(shown / f"shot{n:04d}.png"), Picture(_view(linear), False, "uint16"))
    return renders, shown


def test_shown_dreams_the_exr_render_as_the_viewer_sees_it(exr_shot, tmp_path, capsys):
    """--shown: a PNG output is the dream of the image as shown (the same as
    dreaming that PNG), an EXR output carries it back to scene light: viewed
    again it is that dream, where the plain EXR dream is a muted one."""
    from dream_core.cli import main

    renders, shown = exr_shot
    render, png = str(renders / "shot0001.exr"), str(shown / "shot0001.png")
    for args in (["dream", png, "-o", str(tmp_path / "direct.png")],
                 ["dream", render, "-o", str(tmp_path / "as_shown.png"), "--shown", png],
                 ["dream", render, "-o", str(tmp_path / "as_shown.exr"), "--shown", png],
                 ["dream", render, "-o", str(tmp_path / "plain.exr")]):
        assert main([*args, *FAST]) == 0, capsys.readouterr().err
    direct = read_image(str(tmp_path / "direct.png")).pixels
    assert np.array_equal(read_image(str(tmp_path / "as_shown.png")).pixels, direct)
    seen = read_image(png).pixels
    carried = read_image(str(tmp_path / "as_shown.exr"))
    assert carried.linear and carried.pixels.shape == direct.shape
    viewed = _view(carried.pixels)
    assert np.abs(viewed - direct).mean() < 1 / 255  # viewed again: the dream of what was seen
    dream_strength = np.abs(direct - seen).mean()
    plain_strength = np.abs(_view(read_image(str(tmp_path / "plain.exr")).pixels) - seen).mean()
    assert np.abs(viewed - seen).mean() > 0.9 * dream_strength > plain_strength  # the plain dream is muted


def test_shown_folders_match_by_frame_and_a_changed_view_is_dreamed_again(exr_shot, tmp_path, capsys):
    from dream_core.cli import main

    renders, shown = exr_shot
    out = tmp_path / "dreamed"
    args = ["dream", str(renders), "-o", str(out), "--shown", str(shown), *FAST]
    assert main(args) == 0, capsys.readouterr().err
    assert visible(out) == ["shot0001.exr", "shot0002.exr", "shot0003.exr"]
    capsys.readouterr()
    assert main(args) == 0 and "3 already done" in capsys.readouterr().err
    brighter = read_image(str(shown / "shot0002.png"))  # the view changed (say, an exposure): frame 2 on
    write_image(str(shown / "shot0002.png"), brighter.with_pixels(np.clip(brighter.pixels * 1.1, 0, 1)))
    stamp = os.path.getmtime(out / "shot0001.exr")
    assert main(args) == 0 and "1 already done" in capsys.readouterr().err
    assert os.path.getmtime(out / "shot0001.exr") == stamp
    as_shown = read_image(str(out / "shot0001.exr")).pixels
    plain = [a for a in args if a not in ("--shown", str(shown))]  # dreamed as they are now: every frame again
    assert main(plain) == 0 and "dreamed 3 frames ->" in capsys.readouterr().err
    assert not np.array_equal(read_image(str(out / "shot0001.exr")).pixels, as_shown)

    frames_png, partial = tmp_path / "pngs", tmp_path / "partial"
    for n in (1, 2):
        for folder in (frames_png, partial):
            write_image(str(folder / f"shot000{n}.png"), read_image(str(shown / f"shot000{n}.png")))
    small = tmp_path / "small.png"
    write_image(str(small), Picture(np.zeros((40, 60, 3), np.float32), False, "uint8"))
    never = tmp_path / "never"
    cases = [
        (["dream", str(frames_png), "-o", str(never), "--shown", str(shown)], ["--shown is for EXR renders"]),
        (["dream", str(renders), "-o", str(never), "--shown", str(partial)], ["has no image of frame 3"]),
        (["dream", str(renders), "-o", str(never), "--shown", str(small)], ["--shown must be a folder"]),
        (["dream", str(renders), "-o", str(shown), "--shown", str(shown), "--format", "png"],
         ["would overwrite the image as shown"]),
    ]
    for case, needles in cases:
        _assert_usage_error(main([*case, *FAST]), capsys.readouterr().err, *needles)
    assert not never.exists()
    code = main(["dream", str(renders / "shot0001.exr"), "-o", str(never) + ".exr", "--shown", str(small), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "the image as shown is 60x40, the render 128x96" in err[0], err
    assert not os.path.exists(str(never) + ".exr")
