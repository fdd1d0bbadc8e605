"""Per-object dreaming from a Cryptomatte object pass: the maps, the frame
pipeline (an object at 0 keeps its pixels), the CLI and the server. The
files are written as Blender writes them (checked against Blender's own in
test_blender.py): ids as float32 bits, coverage beside, a JSON manifest."""
import json

import numpy as np
import OpenEXR
import pytest
from conftest import cli

from dream_core import DreamConfig, DreamSettings, Picture, SequenceDreamer, read_image
from dream_core.config import ObjectStrengths
from dream_core.errors import BadImage, BadSetting
from dream_core.frame.objects import strength_maps
from dream_core.io.cryptomatte import read_cryptomatte

IDS = {"Statue": 0x4159B52A, "Floor": 0xA8FCE865, "Lamp": 0x789A1936}
CONFIG = DreamConfig(octaves=2, iterations=4, step=0.03, seed=1)


def disk_coverage(height: int, width: int, centre, radius: float, samples: int = 4) -> np.ndarray:
    """Anti-aliased coverage of a disk, by supersampling each pixel."""
    offsets = (np.arange(samples) + 0.5) / samples
    ys = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)
    xs = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)
    inside = (ys[:, None] - centre[0]) ** 2 + (xs[None, :] - centre[1]) ** 2 <= radius**2
    return inside.reshape(height, samples, width, samples).mean(axis=(1, 3)).astype(np.float32)


def scene_coverage(height=48, width=64) -> dict:
    """A statue (a disk) in front of a floor (the lower half); the world above."""
    statue = disk_coverage(height, width, (22, 30), 12)
    floor = np.zeros((height, width), np.float32)
    floor[height // 2:] = 1.0
    return {"Statue": statue, "Floor": floor * (1 - statue)}


def write_cryptomatte_exr(path, pixels: np.ndarray, coverage: dict, half_ids: bool = False) -> str:
    """A multilayer EXR as Blender writes it: Combined plus CryptoObject ranks and manifest."""
    h, w = pixels.shape[:2]
    names = list(coverage)
    cov = np.stack([coverage[n] for n in names], axis=-1)
    ids = np.array([IDS[n] for n in names], np.uint32)
    order = np.argsort(-cov, axis=-1, kind="stable")
    channels = {f"ViewLayer.Combined.{c}": np.ascontiguousarray(pixels[..., i]) for i, c in enumerate("RGBA")}
    ranks = 4  # two quads, as Blender's depth 4
    for rank in range(ranks):
        k = order[..., rank] if rank < len(names) else None
        rank_id = ids[k] if k is not None else np.zeros((h, w), np.uint32)
        rank_cov = np.take_along_axis(cov, k[..., None], -1)[..., 0] if k is not None else np.zeros((h, w))
        quad, pair = divmod(rank, 2)
        id_channel, cov_channel = ("r", "g") if pair == 0 else ("b", "a")
        stem = f"ViewLayer.CryptoObject{quad:02d}."
        as_float = np.ascontiguousarray(rank_id).view(np.float32)
        channels[stem + id_channel] = as_float.astype(np.float16) if half_ids else as_float
        channels[stem + cov_channel] = rank_cov.astype(np.float16 if half_ids else np.float32)
    manifest = json.dumps({n: f"{IDS[n]:08x}" for n in IDS})
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
              "cryptomatte/542cafa/name": "ViewLayer.CryptoObject", "cryptomatte/542cafa/manifest": manifest,
              "cryptomatte/542cafa/hash": "MurmurHash3_32", "cryptomatte/542cafa/conversion": "uint32_to_float32"}
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))
    return str(path)


@pytest.fixture()
def statue_exr(tmp_path, coffee):
    linear = np.concatenate([coffee[:48, :64] ** 2.2, np.ones((48, 64, 1), np.float32)], axis=-1)
    return write_cryptomatte_exr(tmp_path / "statue_0001.exr", linear, scene_coverage())


def dream_with(lite0, picture, objects=None, **settings):
    return SequenceDreamer().dream(lite0, picture, DreamSettings(config=CONFIG, objects=objects, **settings))


def change(a, b) -> np.ndarray:
    return np.abs(a.pixels[..., :3] - b.pixels[..., :3]).max(axis=-1)


def test_maps_weigh_each_object_by_its_coverage(statue_exr):
    matte = read_cryptomatte(read_image(statue_exr).passes)
    assert matte.names() == ["Floor", "Lamp", "Statue"]
    cover = scene_coverage()
    maps = strength_maps(matte, ObjectStrengths({"Statue": 2.0, "Floor": 0.0}, background=0.5))
    steps, share = maps.steps[0, 0].numpy(), maps.share[0, 0].numpy()
    world = 1 - cover["Statue"] - cover["Floor"]
    np.testing.assert_allclose(steps, 2 * cover["Statue"] + 0.5 * world, atol=1e-6)
    np.testing.assert_allclose(share, cover["Statue"] + world, atol=1e-6)
    edge = (cover["Statue"] > 0.2) & (cover["Statue"] < 0.8)
    assert edge.sum() > 10  # anti-aliased pixels are shared, not rounded to one object


def test_an_object_at_zero_keeps_its_pixels_and_the_rest_dreams_as_without(lite0, statue_exr):
    picture = read_image(statue_exr)
    statue = scene_coverage()["Statue"]
    plain = dream_with(lite0, picture)
    clean = dream_with(lite0, picture, ObjectStrengths({"Statue": 0.0}))
    assert change(clean, picture)[statue > 0.999].max() < 1e-5  # exactly as rendered
    assert change(plain, picture)[statue > 0.999].mean() > 0.02  # (it does dream without)
    rest = statue == 0
    ratio = change(clean, picture)[rest].mean() / change(plain, picture)[rest].mean()
    assert 0.85 < ratio < 1.15, ratio
    # the edge blends by coverage: a pixel half covered changes about half as much
    edge = (statue > 0.3) & (statue < 0.7)
    assert change(clean, picture)[edge].mean() < 0.8 * change(plain, picture)[edge].mean()


def test_strength_two_dreams_harder_and_one_as_hard_as_without_strengths(lite0, statue_exr):
    picture = read_image(statue_exr)
    inside = scene_coverage()["Statue"] > 0.999
    plain = dream_with(lite0, picture)
    ones = dream_with(lite0, picture, ObjectStrengths({"Statue": 1.0}))
    # (not equal to the last bit: resizing a map of ones rounds, and the ascent magnifies rounding)
    assert 0.9 < change(ones, picture)[inside].mean() / change(plain, picture)[inside].mean() < 1.1
    double = dream_with(lite0, picture, ObjectStrengths({"Statue": 2.0}))
    assert change(double, picture)[inside].mean() > 1.4 * change(plain, picture)[inside].mean()


def test_only_the_named_objects_dream_and_as_hard_as_in_a_whole_dream(lite0, statue_exr):
    picture = read_image(statue_exr)
    statue = scene_coverage()["Statue"]
    only = dream_with(lite0, picture, ObjectStrengths({"Statue": 1.0}, others=0.0, background=0.0))
    assert change(only, picture)[statue == 0].max() < 1e-5
    inside = statue > 0.999
    ratio = change(only, picture)[inside].mean() / change(dream_with(lite0, picture), picture)[inside].mean()
    assert 0.85 < ratio < 1.2, ratio  # the step is the mean change of the pixels that dream


def test_in_a_sequence_each_frames_own_strengths_decide(lite0, statue_exr):
    """Frame 2 carries frame 1's dream along; the statue, at 0 on frame 2, still comes out as rendered."""
    picture = read_image(statue_exr)
    inside = scene_coverage()["Statue"] > 0.999
    for mode in ("blend", "flow"):
        sequence = SequenceDreamer()
        settings = DreamSettings(config=CONFIG, temporal=mode)
        first = sequence.dream(lite0, picture, settings, frame=1)
        assert change(first, picture)[inside].mean() > 0.02
        second = sequence.dream(lite0, picture, DreamSettings(config=CONFIG, temporal=mode,
                                                              objects=ObjectStrengths({"Statue": 0.0})), frame=2)
        assert change(second, picture)[inside].max() < 1e-5, mode


def test_names_the_frame_lacks_are_an_error_listing_what_it_has(lite0, statue_exr):
    picture = read_image(statue_exr)
    with pytest.raises(BadSetting, match="no object 'Teapot'.*'Floor', 'Lamp', 'Statue'"):
        dream_with(lite0, picture, ObjectStrengths({"Teapot": 0.0}, require_all=True))
    dream_with(lite0, picture, ObjectStrengths({"Teapot": 0.0}))  # the add-on names objects that may be off screen


def test_a_frame_without_cryptomatte_says_which_pass_to_render(lite0, tmp_path, coffee):
    with pytest.raises(BadImage, match="Cryptomatte > Object"):
        dream_with(lite0, Picture(coffee[:48, :64]), ObjectStrengths({"Statue": 0.0}))
    half = write_cryptomatte_exr(tmp_path / "half.exr", np.ones((48, 64, 4), np.float32), scene_coverage(),
                                 half_ids=True)
    with pytest.raises(BadImage, match="32-bit float"):
        dream_with(lite0, read_image(half), ObjectStrengths({"Statue": 0.0}))


def test_strengths_travel_as_params_and_bad_ones_are_named():
    settings = DreamSettings(objects=ObjectStrengths({"Statue": 0.0}, background=2.0))
    assert DreamSettings.from_params(settings.to_params()).objects == settings.objects
    for bad, words in (({"objects": {"Statue": 2.5}}, "'Statue' must be between 0.0 and 2.0"),
                       ({"objects": {"Statue": "x"}}, "'Statue' must be between"),
                       ({"background": -1}, "background must be between"),
                       ({"colour": 1}, "keys objects, others, background, require_all"),
                       ([], "keys objects")):
        with pytest.raises(BadSetting, match=words):
            DreamSettings.from_params({"objects": bad})


def test_the_dreamed_file_keeps_its_cryptomatte(lite0, statue_exr, tmp_path):
    """Compositing downstream still finds the objects in the dreamed frame."""
    from dream_core import write_image

    out = str(tmp_path / "out.exr")
    write_image(out, dream_with(lite0, read_image(statue_exr), ObjectStrengths({"Statue": 0.0})))
    assert read_cryptomatte(read_image(out).passes).names() == ["Floor", "Lamp", "Statue"]


@pytest.mark.slow
def test_cli_masks_by_object_name_locally_and_through_the_server(statue_exr, tmp_path, server, token_file):
    statue = scene_coverage()["Statue"]
    source = read_image(statue_exr)
    tiny = ["--octaves", "2", "--iterations", "3", "--seed", "1"]
    for where, extra in (("local", []), ("server", ["--server", server.address, "--token-file", token_file])):
        out = str(tmp_path / f"{where}.exr")
        done = cli("dream", statue_exr, "-o", out, "--mask", "cryptomatte:Statue", "--mask-strength", "2",
                   *tiny, *extra)
        assert done.returncode == 0, done.stderr
        dreamed = read_image(out)
        assert change(dreamed, source)[statue == 0].max() < 1e-3, where  # half-float output
        assert change(dreamed, source)[statue > 0.999].mean() > 0.02, where
    kept = cli("dream", statue_exr, "-o", str(tmp_path / "kept.exr"), "--mask-strength", "Statue=0,*=1.5",
               *tiny)
    assert kept.returncode == 0, kept.stderr
    assert change(read_image(str(tmp_path / "kept.exr")), source)[statue > 0.999].max() < 1e-3


def test_cli_refuses_bad_object_masks_in_one_line(statue_exr, tmp_path):
    cases = ((["--mask", "cryptomatte:Teapot"], "no object 'Teapot' in the frame's Cryptomatte; it has 'Floor'"),
             (["--mask", "cryptomatte:"], "needs object names"),
             (["--mask-strength", "2"], "a strength without a name needs --mask cryptomatte:"),
             (["--mask-strength", "Statue=3"], "between 0.0 and 2.0"),
             (["--mask-strength", "Statue=much"], "expected NAME=S or S"))
    for args, words in cases:
        done = cli("dream", statue_exr, "-o", str(tmp_path / "x.exr"), "--octaves", "1", "--iterations", "1",
                   *args)
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr.strip().splitlines()[-1], (args, done.stderr)
    assert not (tmp_path / "x.exr").exists()


def test_a_malformed_or_huge_manifest_is_one_clear_refusal():
    from dream_core.errors import BadImage
    from dream_core.io import cryptomatte

    layer = {"cryptomatte/542cafa/name": "ViewLayer.CryptoObject"}
    for manifest, says in (("[" * 100_000, "not readable"), ('{"a": 5}', "not readable"), ("[1]", "not readable"),
                           (" " * (cryptomatte.MAX_MANIFEST + 1), "at most")):
        with pytest.raises(BadImage, match=says):
            cryptomatte._manifests({**layer, "cryptomatte/542cafa/manifest": manifest})
