import numpy as np
import OpenEXR
import pytest
import torch
from bombs import exr_with_parts, png_declaring
from PIL import Image

from dream_core.io import Picture, decode_image, encode_image, read_image, write_image
from dream_core.io.transfer import srgb_to_linear


def test_png_8_and_16_bit_round_trip_exactly(tmp_path, rng):
    for dtype, top in (("uint8", 255), ("uint16", 65535)):
        values = rng.integers(0, top + 1, (20, 30, 4)).astype(dtype)
        pic = Picture(values.astype(np.float32) / top, False, dtype)
        path = tmp_path / f"x{dtype}.png"
        write_image(str(path), pic)
        back = read_image(str(path))
        assert back.dtype == dtype and back.pixels.shape == (20, 30, 4)
        assert np.array_equal(np.round(back.pixels * top).astype(dtype), values)


def test_16_bit_rgb_png_keeps_16_bits(tmp_path):
    ramp = (np.linspace(0, 65535, 1024 * 3).reshape(1, 1024, 3).repeat(2, 0)).astype(np.uint16)
    write_image(str(tmp_path / "ramp.png"), Picture(ramp.astype(np.float32) / 65535, False, "uint16"))
    back = read_image(str(tmp_path / "ramp.png"))
    assert len(np.unique(np.round(back.pixels * 65535))) > 3000  # far more levels than 8 bits hold


def test_reads_what_pillow_writes(tmp_path):
    yy, xx = np.mgrid[0:32, 0:48]
    arr = np.stack([xx * 5, yy * 7, (xx + yy) * 3], -1).astype(np.uint8)  # smooth, so JPEG stays close
    for ext in ("png", "tif", "jpg"):
        Image.fromarray(arr).save(tmp_path / f"p.{ext}")
        back = read_image(str(tmp_path / f"p.{ext}"))
        tol = 12 if ext == "jpg" else 0
        assert np.abs(np.round(back.pixels * 255) - arr).max() <= tol


def test_grey_and_grey_alpha(tmp_path, rng):
    grey = rng.integers(0, 256, (8, 9)).astype(np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "L.png")
    assert read_image(str(tmp_path / "L.png")).pixels.shape == (8, 9, 1)
    la = rng.integers(0, 256, (8, 9, 2)).astype(np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "LA.png")
    pic = read_image(str(tmp_path / "LA.png"))  # grey and alpha stay two channels (OpenCV reads four)
    assert pic.pixels.shape == (8, 9, 2) and np.array_equal(np.round(pic.pixels * 255), la)
    write_image(str(tmp_path / "LA_again.png"), pic)
    assert Image.open(tmp_path / "LA_again.png").mode == "LA"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "LA_again.png")), la)
    deep = Picture(rng.random((5, 7, 2)).astype(np.float32), False, "uint16")  # 16 bits a sample
    write_image(str(tmp_path / "LA16.png"), deep)
    back = read_image(str(tmp_path / "LA16.png"))
    assert back.dtype == "uint16" and np.allclose(back.pixels, deep.pixels, atol=1 / 65535)
    for ext in (".tif", ".webp", ".jpg"):  # no grey-and-alpha there: written grey as RGB(A)
        write_image(str(tmp_path / f"LA{ext}"), pic)
        assert read_image(str(tmp_path / f"LA{ext}")).pixels.shape[-1] in (1, 3, 4)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_exr_round_trip_keeps_type_alpha_and_hdr(tmp_path, rng, dtype):
    pixels = (rng.random((16, 24, 4)) * [5, 5, 5, 1]).astype(np.float32)
    path = str(tmp_path / "f.exr")
    write_image(path, Picture(pixels, True, dtype))
    back = read_image(path)
    assert back.linear and back.dtype == dtype
    tol = 5e-3 if dtype == "float16" else 0
    assert np.allclose(back.pixels, pixels, rtol=tol, atol=tol)


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_alpha_is_premultiplied_in_exr_and_straight_in_display_formats(tmp_path, ext):
    """Blender renders EXR colour multiplied by alpha and writes PNG colour
    without: a half-covered edge written across formats as it came made dark
    fringes in a PNG (and too bright ones in an EXR made from a PNG)."""
    straight = np.array([[[0.5, 0.25, 1.0, 0.5], [0.5, 0.25, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]], np.float32)
    premultiplied = straight.copy()
    premultiplied[..., :3] *= straight[..., 3:]
    write_image(str(tmp_path / "edge.exr"), Picture(premultiplied, True, "float32"))
    write_image(str(tmp_path / f"edge{ext}"), read_image(str(tmp_path / "edge.exr")))
    display = read_image(str(tmp_path / f"edge{ext}"))
    assert not display.linear
    as_linear = srgb_to_linear(torch.from_numpy(display.pixels[..., :3])).numpy()
    tol = 0.02 if ext == ".webp" else 3e-3
    np.testing.assert_allclose(as_linear[0, :2], straight[0, :2, :3], atol=tol)  # the same colour, half or whole
    np.testing.assert_allclose(display.pixels[..., 3], straight[..., 3], atol=1 / 255)
    write_image(str(tmp_path / "back.exr"), display)  # and back: multiplied again
    np.testing.assert_allclose(read_image(str(tmp_path / "back.exr")).pixels, premultiplied, atol=tol)


def _write_blender_like_exr(path, rgba, vector, multipart):
    header = lambda: {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}  # noqa: E731
    combined = {f"ViewLayer.Combined.{c}": rgba[..., i].copy() for i, c in enumerate("RGBA")}
    vectors = {f"ViewLayer.Vector.{c}": vector[..., i].copy() for i, c in enumerate("XYZW")}
    if multipart:  # Blender 5: one part per pass
        parts = [OpenEXR.Part(header(), {c[-1]: v for c, v in combined.items()}, "ViewLayer.Combined"),
                 OpenEXR.Part(header(), {c[-1]: v for c, v in vectors.items()}, "ViewLayer.Vector")]
        with OpenEXR.File(parts) as f:
            f.write(path)
    else:  # Blender 3.x: one part, all channels
        with OpenEXR.File(header(), {**combined, **vectors}) as f:
            f.write(path)


@pytest.mark.parametrize("multipart", [False, True])
def test_multilayer_exr_gives_combined_and_vector_passes(tmp_path, rng, multipart):
    rgba = rng.random((8, 10, 4)).astype(np.float32)
    vector = rng.normal(size=(8, 10, 4)).astype(np.float32)
    path = str(tmp_path / "ml.exr")
    _write_blender_like_exr(path, rgba, vector, multipart)
    pic = read_image(path)
    assert np.array_equal(pic.pixels, rgba)
    assert np.array_equal(pic.vectors, vector)


def test_bytes_round_trip_for_the_wire(rng):
    pic = Picture(rng.random((6, 7, 3)).astype(np.float32), False, "uint16")
    back = decode_image(encode_image(pic, "png"), "png")
    assert np.allclose(back.pixels, pic.pixels, atol=1 / 65535)


def test_bad_files_get_clear_errors(tmp_path):
    (tmp_path / "fake.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="not a decodable png"):
        read_image(str(tmp_path / "fake.png"))
    (tmp_path / "fake.exr").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable EXR"):
        read_image(str(tmp_path / "fake.exr"))
    with pytest.raises(ValueError, match="unsupported file type .txt"):
        write_image(str(tmp_path / "x.txt"), Picture(np.zeros((2, 2, 3), np.float32)))
    with pytest.raises(FileNotFoundError):
        read_image(str(tmp_path / "missing.png"))


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "out" / "frame.png"
    write_image(str(target), Picture(np.zeros((4, 4, 3), np.float32)))
    assert [p.name for p in target.parent.iterdir()] == ["frame.png"]
    with pytest.raises((ValueError, Exception)) as err:  # OpenCV refuses to encode an empty image
        write_image(str(target), Picture(np.zeros((0, 4, 3), np.float32)))
    assert err.type is not AssertionError
    assert [p.name for p in target.parent.iterdir()] == ["frame.png"]


@pytest.mark.parametrize("multipart", [False, True])
def test_a_dreamed_multilayer_exr_keeps_its_other_passes(tmp_path, rng, multipart):
    """Depth, vectors and the like come back untouched beside the dreamed Combined."""
    from dream_core.cli import main

    rgba = np.dstack([rng.random((48, 64, 3)), np.linspace(0, 1, 64)[None, :].repeat(48, 0)]).astype(np.float32)
    vector = rng.normal(size=(48, 64, 4)).astype(np.float32)
    src, out = tmp_path / "render.exr", tmp_path / "dreamed.exr"
    _write_blender_like_exr(str(src), rgba, vector, multipart)
    assert main(["dream", str(src), "-o", str(out), "--octaves", "1", "--iterations", "2", "--device", "cpu",
                 "-q"]) == 0
    with OpenEXR.File(str(out), separate_channels=True) as f:
        channels = {name: c.pixels for name, c in f.channels().items()}
    assert sorted(channels) == sorted([f"ViewLayer.Combined.{c}" for c in "RGBA"] +
                                      [f"ViewLayer.Vector.{c}" for c in "XYZW"])
    for i, c in enumerate("XYZW"):
        assert np.array_equal(channels[f"ViewLayer.Vector.{c}"], vector[..., i])
    assert np.array_equal(channels["ViewLayer.Combined.A"], rgba[..., 3])  # alpha untouched
    assert np.abs(channels["ViewLayer.Combined.R"] - rgba[..., 0]).mean() > 0.001  # the picture was dreamed
    again = read_image(str(out))
    assert again.vectors is not None and again.passes is not None  # and it reads as a multilayer frame again


def test_bombs_past_a_lenient_decoder_are_refused_from_their_headers():
    """What the header check cannot read is refused, and every part of an
    EXR is checked: a small part 0 does not let a huge part through."""
    from dream_core.errors import BadImage, ImageTooLarge, ShapeMismatch
    from dream_core.io.images import max_pixels, set_max_pixels

    before = max_pixels()
    set_max_pixels(100 * 100)
    try:
        with pytest.raises(ImageTooLarge, match="200x200"):
            decode_image(png_declaring(200, 200, broken_text=True), "png")  # Pillow cannot read it, libpng can
        with pytest.raises(ImageTooLarge, match="300x300"):
            decode_image(exr_with_parts([(64, 64), (300, 300)]), "exr", source="frame.exr")
        with pytest.raises(ShapeMismatch, match="64x64, 80x80") as refused:
            decode_image(exr_with_parts([(64, 64), (80, 80)]), "exr", source="frame.exr")
        assert "/tmp" not in str(refused.value) and "/proc" not in str(refused.value)  # nor its scratch file
        with pytest.raises(BadImage) as bad:
            decode_image(b"not an exr at all", "exr", source="frame.exr")
        assert "frame.exr" in str(bad.value) and "/tmp" not in str(bad.value)
        with pytest.raises(BadImage, match="header cannot be read"):
            decode_image(b"\xff\xd8\xff" + b"\0" * 64, "jpeg")
    finally:
        set_max_pixels(before)


def test_a_decompression_bomb_is_refused_from_its_header():
    import tracemalloc

    from dream_core.errors import ImageTooLarge
    from dream_core.io.images import max_pixels, set_max_pixels

    bomb = png_declaring(20000, 20000)
    assert len(bomb) < 1000
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLarge):
            decode_image(bomb, "png")
        assert tracemalloc.get_traced_memory()[1] < 10 << 20  # refused before any pixel was decoded
    finally:
        tracemalloc.stop()
    before = max_pixels()
    set_max_pixels(1000 * 1000)
    try:
        with pytest.raises(ImageTooLarge, match="2000x1000"):
            decode_image(png_declaring(2000, 1000), "png")
        exr = encode_image(Picture(np.zeros((1000, 1001, 3), np.float32), True, "float16"), "exr")
        with pytest.raises(ImageTooLarge, match="1001x1000"):
            decode_image(exr, "exr")
    finally:
        set_max_pixels(before)


def _addon_module(name):
    """An add-on module that needs no bpy, loaded from its file (the package's __init__ imports bpy)."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "blender_addon", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"addon_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("multipart", [False, True])
@pytest.mark.parametrize("compression", ["ZIP_COMPRESSION", "NO_COMPRESSION", "PIZ_COMPRESSION"])
def test_an_exr_cut_short_is_seen_as_incomplete(tmp_path, rng, multipart, compression):
    """What the add-on checks before dreaming a render of its own (Blender
    3.4 writes one part, 5.0 one part per pass)."""
    check = _addon_module("exr_check")
    path = str(tmp_path / "render.exr")
    rgba = rng.random((37, 50, 4)).astype(np.float32)
    header = lambda: {"compression": getattr(OpenEXR, compression), "type": OpenEXR.scanlineimage}  # noqa: E731
    channels = {c: rgba[..., i].copy() for i, c in enumerate("RGBA")}
    if multipart:
        parts = [OpenEXR.Part(header(), channels, "Combined"), OpenEXR.Part(header(), channels, "Vector")]
        with OpenEXR.File(parts) as f:
            f.write(path)
    else:
        with OpenEXR.File(header(), channels) as f:
            f.write(path)
    data = open(path, "rb").read()
    assert check.is_complete_exr(path)
    for cut in (3, 100, len(data) // 3, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.exr").write_bytes(data[:cut])
        assert not check.is_complete_exr(str(tmp_path / "cut.exr")), cut
    assert not check.is_complete_exr(str(tmp_path / "missing.exr"))
    (tmp_path / "not.exr").write_bytes(b"\x89PNG" + data[4:])
    assert not check.is_complete_exr(str(tmp_path / "not.exr"))


STAMP = {"File": "/shots/café.blend", "Date": "2026/12/06 10:00:00", "Frame": "7", "Camera": "Camera",
         "Note": "日本 take 2", "cycles.ViewLayer.samples": "4"}


@pytest.mark.parametrize("fmt", ["png", "exr"])
def test_a_pictures_text_metadata_travels_with_it(tmp_path, fmt):
    """Blender's stamp (Latin-1 or not) is read and written back as it was, in
    PNG text chunks and EXR string attributes; Pillow and OpenEXR see it."""
    path = str(tmp_path / f"stamp.{fmt}")
    write_image(path, Picture(np.full((4, 5, 3), 0.5, np.float32), fmt == "exr", "uint8", metadata=STAMP))
    assert read_image(path).metadata == STAMP
    seen = Image.open(path).info if fmt == "png" else OpenEXR.File(path).header()
    assert {k: seen[k] for k in STAMP} == STAMP
    assert decode_image(encode_image(read_image(path), fmt), fmt).metadata == STAMP


def test_what_an_exr_header_says_about_the_file_is_not_carried(tmp_path):
    """An EXR's attributes that describe the file (the writing program, the
    multilayer mark, parts, compression) stay out of the picture's metadata."""
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, "Software": "Blender 5.0.1",
              "BlenderMultiChannel": "Blender V2.55.1 and newer", "colorInteropID": "lin_rec709_scene",
              "Frame": "3", "RenderTime": "00:01.20"}
    channels = {c: np.full((4, 5), 0.25, np.float32) for c in "RGB"}
    with OpenEXR.File(header, channels) as f:
        f.write(str(tmp_path / "b.exr"))
    assert read_image(str(tmp_path / "b.exr")).metadata == {"Frame": "3", "RenderTime": "00:01.20"}


def test_png_text_that_inflates_past_the_limit_is_skipped():
    """A compressed text chunk that would inflate without end is not read."""
    import struct
    import zlib

    from dream_core.io import metadata

    png = encode_image(Picture(np.zeros((2, 2, 3), np.float32), False, "uint8", metadata={"Frame": "1"}), "png")
    body = b"Bomb\0\0" + zlib.compress(b"\0" * (64 << 20), 9)
    bomb = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    at = png.index(b"IDAT") - 4
    assert metadata.from_png(png[:at] + bomb + png[at:]) == {"Frame": "1"}


def test_a_jpeg_is_read_as_shown_by_its_exif_orientation():
    """A camera stores a portrait shot sideways with an EXIF orientation; the
    dream, written without that tag, must already stand upright."""
    import io

    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:6, :, 0] = 255  # a red band along the stored image's top
    sideways = Image.fromarray(stored)
    exif = sideways.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    data = io.BytesIO()
    sideways.save(data, "JPEG", exif=exif, quality=95)
    shown = decode_image(data.getvalue(), "jpeg")
    assert shown.pixels.shape == (48, 32, 3)
    assert shown.pixels[:, -4:, 0].mean() > 0.9 and shown.pixels[:, :20, 0].mean() < 0.1  # the band on the right
    grey = io.BytesIO()
    Image.fromarray(stored[..., 0]).save(grey, "JPEG")
    assert decode_image(grey.getvalue(), "jpeg").pixels.shape == (32, 48, 1)  # grey stays grey
