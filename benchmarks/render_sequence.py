"""Inside Blender (bpy module): render the demo scene as an EXR sequence.

    python benchmarks/render_sequence.py OUT_DIR FRAMES WIDTH HEIGHT SAMPLES
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo"))
import scene as demo_scene  # noqa: E402

out_dir, frames, width, height, samples = sys.argv[1], *map(int, sys.argv[2:6])
demo_scene.build_scene(os.path.join(out_dir, "scene.blend"), frames, width, height, samples)
demo_scene.render_exr_sequence(out_dir)
sys.stdout.flush()
os._exit(0)
