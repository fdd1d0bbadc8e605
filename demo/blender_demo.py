"""Inside Blender (the bpy module): build the demo scene, install the
add-on zip as a user would, render and dream the animation through the
dream server, save the .blend and an MP4 of the dreamed strip's scene.

    python demo/blender_demo.py OUT_DIR ADDON_ZIP FRAMES
"""
import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scene as demo_scene  # noqa: E402


def install(zip_path: str) -> None:
    if bpy.app.version >= (4, 2, 0):
        bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    else:
        bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
        bpy.ops.preferences.addon_enable(module="dream_renders")


def render_preview(scene, path: str) -> None:
    """The strip's scene (its sequencer holds the dreamed frames) rendered to an MP4."""
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    scene.render.ffmpeg.format = "MPEG4"
    scene.render.ffmpeg.codec = "H264"
    scene.render.use_sequencer = True
    scene.render.filepath = path
    scene.render.use_file_extension = False
    bpy.ops.render.render(animation=True, scene=scene.name)


def write_shown_renders(scene, renders: str, out: str) -> None:
    """Each raw render as Blender writes it (the scene's view transform), for the render | dream GIF."""
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(renders)):
        if name.endswith(".exr"):
            image = bpy.data.images.load(os.path.join(renders, name), check_existing=False)
            image.save_render(os.path.join(out, name.replace(".exr", ".png")), scene=scene)
            bpy.data.images.remove(image)


def main() -> None:
    out_dir, zip_path, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
    scene = demo_scene.build_scene(os.path.join(out_dir, "dream_demo.blend"), frames=frames, width=320,
                                   height=180, samples=16)
    install(zip_path)
    scene.dream.preset = "CLASSIC"
    scene.dream.output_dir = "//"
    bpy.ops.dream.render_animation()
    bpy.ops.wm.save_mainfile()
    write_shown_renders(scene, os.path.join(out_dir, "renders"), os.path.join(out_dir, "renders_shown"))
    try:
        render_preview(scene.dream.strip_scene, os.path.join(out_dir, "dream_preview.mp4"))
    except Exception as err:  # the GIF made outside Blender still shows the result
        print(f"demo: no MP4 preview ({err})")
    print("DEMO OK", flush=True)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        demo_scene.exit_now(1)
    demo_scene.exit_now(0)
