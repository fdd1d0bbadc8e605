"""How long Blender's window freezes: Render Animation against Dream
Animation, side by side in one Blender 3.4 window under Xvfb.

    python benchmarks/window_freeze.py [--frames 4] [--size 320x180] [--samples 32]

A timer on Blender's main thread asks to run every 10 ms; the longest gap
between its runs while a job is going is the longest the window could not
answer the user. Render Animation (Blender's render job) is the reference;
Dream Animation renders each frame, then the server dreams it (a dream
server on this machine, CPU, started here). Prints one JSON line per job.
FREEZE_LOG=FILE keeps what the window's Blender printed (render times);
FREEZE_DISPLAY=NONE|WINDOW|AREA|SCREEN sets where Blender shows renders.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = 0.01  # s the watching timer asks for


def inside_blender(stage: str, workdir: str, args: list) -> None:
    import bpy

    if stage == "prepare":
        sys.path.insert(0, os.path.join(ROOT, "demo"))
        import scene as demo_scene

        frames, width, height, samples, zip_path = int(args[0]), int(args[1]), int(args[2]), int(args[3]), args[4]
        scene = demo_scene.build_scene(os.path.join(workdir, "shot.blend"), frames, width, height, samples)
        bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
        bpy.ops.preferences.addon_enable(module="dream_renders")
        bpy.context.preferences.view.show_splash = False
        bpy.ops.wm.save_userpref()
        d = scene.dream
        d.octaves, d.iterations, d.tile = 2, 3, 0
        scene.render.filepath = "//plain/frame_"
        bpy.ops.wm.save_mainfile()
        return

    wm = bpy.context.window_manager
    if os.environ.get("FREEZE_DISPLAY"):
        bpy.context.preferences.view.render_display_type = os.environ["FREEZE_DISPLAY"]
    gaps = {"last": None, "longest": 0.0, "ticks": 0}

    def watch():
        now = time.perf_counter()
        if gaps["last"] is not None:
            gaps["longest"] = max(gaps["longest"], now - gaps["last"])
        gaps["last"], gaps["ticks"] = now, gaps["ticks"] + 1
        return TICK

    def measure(start, busy):
        gaps.update(last=None, longest=0.0, ticks=0)
        began = time.perf_counter()
        with bpy.context.temp_override(window=wm.windows[0]):
            start()
        while busy():
            yield
        return {"seconds": round(time.perf_counter() - began, 2), "longest_freeze": round(gaps["longest"], 3),
                "ticks": gaps["ticks"]}

    def steps():
        yield  # the window drawn once
        plain = yield from measure(lambda: bpy.ops.render.render("INVOKE_DEFAULT", animation=True),
                                   lambda: bpy.app.is_job_running("RENDER"))
        print("RESULT " + json.dumps({"job": "Render Animation", **plain}), flush=True)
        dream = yield from measure(lambda: bpy.ops.dream.render_animation("INVOKE_DEFAULT", rerender=True),
                                   lambda: wm.dream.running)
        print("RESULT " + json.dumps({"job": "Dream Animation", **dream, "status": wm.dream.status}), flush=True)
        bpy.ops.wm.quit_blender()

    driver = steps()

    def drive():
        try:
            next(driver)
        except StopIteration:
            return None
        return 0.05

    bpy.app.timers.register(watch, first_interval=0.0, persistent=True)
    bpy.app.timers.register(drive, first_interval=1.0, persistent=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--samples", type=int, default=32)
    opts = parser.parse_args()
    width, height = map(int, opts.size.split("x"))
    sys.path.insert(0, ROOT)
    from dream_core.wire.spawn import spawn_server

    work = tempfile.mkdtemp(prefix="window_freeze_")
    server = spawn_server(sys.executable, device="cpu", env={**os.environ, "PYTHONPATH": ROOT})
    try:
        token = os.path.join(work, "token")
        with open(os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(server.token)  # readable by its owner only, as the add-on requires
        env = {**os.environ, "BLENDER_USER_CONFIG": os.path.join(work, "config"),
               "BLENDER_USER_SCRIPTS": os.path.join(work, "scripts"), "DREAM_SERVER_ADDRESS": server.address,
               "DREAM_SERVER_TOKEN_FILE": token}
        zip_path = subprocess.run([sys.executable, os.path.join(ROOT, "build.py"), "--out", os.path.join(work, "dist")],
                                  capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(["blender", "-b", "--factory-startup", "--python", __file__, "--", "prepare", work,
                        str(opts.frames), str(width), str(height), str(opts.samples), zip_path],
                       env=env, check=True, capture_output=True, timeout=600)
        window = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "blender",
                                 os.path.join(work, "shot.blend"), "--python", __file__, "--", "measure", work],
                                env=env, capture_output=True, text=True, timeout=1800)
        if os.environ.get("FREEZE_LOG"):
            with open(os.environ["FREEZE_LOG"], "w") as f:
                f.write(window.stdout + window.stderr)
        results = [line[len("RESULT "):] for line in window.stdout.splitlines() if line.startswith("RESULT ")]
        if len(results) != 2:
            sys.exit(f"the window run did not finish:\n{window.stdout[-3000:]}\n{window.stderr[-3000:]}")
        for line in results:
            print(json.dumps({**json.loads(line), "frames": opts.frames, "size": opts.size, "samples": opts.samples}))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if "--" in sys.argv:  # inside Blender
        rest = sys.argv[sys.argv.index("--") + 1:]
        inside_blender(rest[0], rest[1], rest[2:])
    else:
        main()
