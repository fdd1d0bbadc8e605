"""The README's per-object picture: the demo scene rendered with Cryptomatte,
dreamed with the cube kept clean and the sphere at twice the strength, beside
the render and a dream with no strengths.

    python demo/objects_picture.py docs/objects.png   (needs the bpy module)
"""
import io
import os
import subprocess
import sys
import tempfile

import bpy
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scene as demo_scene  # noqa: E402

WIDTH, HEIGHT = 384, 216
DREAM = ["--octaves", "4", "--iterations", "10", "--seed", "2"]


def render(folder: str) -> str:
    demo_scene.build_scene(os.path.join(folder, "shot.blend"), frames=1, width=WIDTH, height=HEIGHT, samples=32)
    bpy.context.scene.view_layers[0].use_pass_cryptomatte_object = True
    demo_scene.render_exr_sequence(folder)
    return os.path.join(folder, "frame_0001.exr")


def dream(source: str, target: str, *extra: str) -> str:
    subprocess.run([sys.executable, "-m", "dream_core", "dream", source, "-o", target, *DREAM, *extra, "--quiet"],
                   check=True)
    return target


def as_display(path: str) -> Image.Image:
    """A scene-linear EXR as an sRGB picture."""
    from dream_core import read_image
    from dream_core.io.images import encode_image

    return Image.open(io.BytesIO(encode_image(read_image(path), "png"))).convert("RGB")


def main() -> None:
    out = sys.argv[-1]
    with tempfile.TemporaryDirectory() as folder:
        source = render(folder)
        panels = [("render", source),
                  ("dreamed, every object at 1", dream(source, os.path.join(folder, "plain.exr"))),
                  ("cube 0, sphere 2", dream(source, os.path.join(folder, "objects.exr"),
                                             "--mask-strength", "Cube=0,Sphere=2"))]
        sheet = Image.new("RGB", (WIDTH * len(panels), HEIGHT + 22), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (label, path) in enumerate(panels):
            sheet.paste(as_display(path), (i * WIDTH, 22))
            draw.text((i * WIDTH + 6, 5), label, fill="black")
        sheet.save(out)
    print(out)


if __name__ == "__main__":
    main()
