"""Scenarios that need Blender's window and event loop (Blender 3.4 under
Xvfb: ``blender shot.blend --python gui_scenarios.py -- NAME WORKDIR ZIP``,
the shot prepared by a blender_scenarios.py scenario): a render
job started as a user starts it runs in Blender's render thread, and only
the event loop's timers see it through. Each step waits for the one before
(no fixed sleeps); DREAM_TEST_GUI_TIMEOUT bounds the whole scenario so a
broken build fails instead of hanging. Prints ``RESULT {json}`` and quits."""
import faulthandler
import json
import os
import sys
import threading
import time

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_scenarios as scenarios  # noqa: E402

POLL = 0.25  # s between looks at the running job
STATE = {}  # name -> what a scenario's timeout reports of the add-on's state besides the panel's status


def window_override():
    return bpy.context.temp_override(window=bpy.context.window_manager.windows[0])


def busy_window(draw_seconds: float = 0.05) -> None:
    """The main thread inside Python draw code much of the time, as on a
    loaded machine: headers that take ``draw_seconds`` to draw, redrawn
    continually. While one draws, Blender refuses Python writes to the
    scene from any thread, render handlers included."""
    def slow_draw(_header, _context):
        time.sleep(draw_seconds)

    for header in (bpy.types.IMAGE_HT_header, bpy.types.STATUSBAR_HT_header, bpy.types.TOPBAR_HT_upper_bar):
        header.append(slow_draw)

    def redraw():
        for window in bpy.context.window_manager.windows:
            for area in window.screen.areas:
                area.tag_redraw()
        return 0.01

    bpy.app.timers.register(redraw, persistent=True)


class StuckRefusal:
    """Leaves Blender's refusal of Python writes stuck on, as two threads
    whose calls interleave can (see blender_addon/render_thread.py): a
    header's draw starts (writes refused), a thread's property update starts
    inside it (allowed; Blender notes "refused"), the draw ends (allowed
    again), the update ends (Blender puts back "refused"). Poll ``stuck``
    from a step until it is done: ``then`` runs just before the flag sticks
    (a bpy.ops call is refused after)."""

    WAIT = 30.0  # s: a step's timeout says more than a hang here

    def __init__(self) -> None:
        self.in_draw, self.in_update, self.draw_over, self.done = (threading.Event() for _ in range(4))
        self.was_stuck = None
        bpy.types.WindowManager.test_write_refusal = bpy.props.IntProperty(update=lambda wm, context: self._update())
        bpy.types.IMAGE_HT_header.append(self._draw)  # busy_window redraws it continually
        threading.Thread(target=self._set, daemon=True).start()

    def _draw(self, _header, _context):
        if not self.in_draw.is_set():
            self.in_draw.set()
            self.in_update.wait(self.WAIT)

    def _set(self):
        self.in_draw.wait(self.WAIT)
        bpy.context.window_manager.test_write_refusal += 1
        self.done.set()

    def _update(self):
        self.in_update.set()
        self.draw_over.wait(self.WAIT)

    def stuck(self, then) -> bool:
        """On the main thread, outside a draw: once the update is under way, runs ``then``, lets the update
        end and notes whether Python writes are refused now (they are, until the add-on frees them)."""
        if not self.in_update.is_set():
            return False
        then()
        self.draw_over.set()
        self.done.wait(self.WAIT)
        bpy.types.IMAGE_HT_header.remove(self._draw)
        scene = bpy.context.scene
        try:
            scene.tag = scene.tag
            self.was_stuck = False
        except AttributeError:
            self.was_stuck = True
        return True


def finish(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)
    try:
        bpy.ops.wm.quit_blender()
    except RuntimeError:  # "can't modify blend data in this state (drawing/rendering)": it would not quit at all
        os._exit(1 if "error" in result else 0)  # the RESULT is out: the test fails now, not at its timeout


def steps_on_render(workdir, zip_path):
    """Dream Frame with no Image Editor open; Render Animation (the render
    job, in its thread) with Dream on Render; then F12: the still is dreamed
    and shown in the Image Editor."""
    scene = bpy.context.scene  # the shot scenario_prepare_on_render saved, opened in the window
    on_render = sys.modules[f"{scenarios.ADDON}.on_render"]
    ended = []
    bpy.app.handlers.render_complete.append(lambda *_: ended.append("complete"))
    bpy.app.handlers.render_cancel.append(lambda *_: ended.append("cancel"))

    def job_state(dreaming):
        return dreaming and {"sent": sorted(dreaming.sent), "written": sorted(dreaming.written_frames),
                             "pending": len(dreaming.pending), "ended": dreaming.ended,
                             "finished": dreaming.finished, "error": dreaming.error}

    STATE["on_render"] = lambda: {"ended": ended, "active": job_state(on_render._active),
                                  "finishing": [job_state(d) for d in on_render._finishing],
                                  "rendering": bpy.app.is_job_running("RENDER"),
                                  "pump": bpy.app.timers.is_registered(on_render._gui_pump)}

    def steps():
        result = {}
        # Dream Frame with no Image Editor open: the result still shows
        yield lambda: bpy.ops.dream.render_frame("INVOKE_DEFAULT")
        yield lambda: bpy.data.images.get("Dream Result") is not None and not bpy.context.window_manager.dream.running
        result["frame_shown_in"] = [area.type for window in bpy.context.window_manager.windows
                                    for area in window.screen.areas if area.type == "IMAGE_EDITOR"
                                    and area.spaces.active.image == bpy.data.images["Dream Result"]]
        ended.clear()  # (Dream Frame's own render ended too)
        busy_window()
        refusal = StuckRefusal()  # as Blender starts to render, Python writes are refused until the add-on frees them
        yield lambda: refusal.stuck(then=lambda: bpy.ops.render.render("INVOKE_DEFAULT", animation=True))
        yield lambda: bool(ended) and on_render._active is None  # rendered, and every frame dreamed
        out = os.path.join(workdir, "out")
        result["refusal_was_stuck"] = refusal.was_stuck
        result["ended"] = list(ended)
        result["files"] = scenarios.visible(out) if os.path.isdir(out) else []
        result["summary"] = on_render.last_summary
        result["output"] = scenarios.output_report(scene)
        wm = bpy.context.window_manager
        wm.dream.status = ""  # the still's run says "Done" when it is over
        yield lambda: bpy.ops.render.render("INVOKE_DEFAULT")
        yield lambda: len(ended) == 2 and wm.dream.status.startswith("Done") and not wm.dream.running
        image = bpy.data.images["Dream Result"]
        result["still"] = os.path.basename(image.filepath)
        result["still_size"] = list(image.size)
        result["status"] = bpy.context.window_manager.dream.status
        result["output_after_still"] = scenarios.output_report(scene)
        result["helper_left"] = ".Dream Colour" in bpy.data.scenes
        result["pump_kept"] = bpy.app.timers.is_registered(on_render._gui_pump)  # the main thread's, for every job
        # Dream Animation renders each frame in Blender's render job, as Render Animation does: the window's
        # timers run while a frame renders (a blocking render would hold them until it is done)
        seen = {"live": 0, "stop": False, "saved": None}
        out_before = scenarios.visible(os.path.join(workdir, "out"))

        def watch():
            if wm.dream.running and bpy.app.is_job_running("RENDER"):
                seen["live"] += 1
                if seen["saved"] is None:  # the user saves while Blender renders a frame for the run
                    seen["saved"] = os.path.join(workdir, "saved_mid_render.blend")
                    with window_override():
                        bpy.ops.wm.save_as_mainfile(filepath=seen["saved"], copy=True)
            return None if seen["stop"] else 0.01

        bpy.app.timers.register(watch, first_interval=0.0)
        summary = on_render.last_summary
        yield lambda: bpy.ops.dream.render_animation("INVOKE_DEFAULT", rerender=True)
        yield lambda: not wm.dream.running
        seen["stop"] = True
        renders = os.path.join(workdir, "dream", "renders")
        result["animation"] = {"status": wm.dream.status, "live_ticks": seen["live"],
                               "frames": scenarios.visible(os.path.join(workdir, "dream", "frames")),
                               "partials": [n for n in os.listdir(renders) if n.startswith(".dream-")],
                               "output": scenarios.output_report(scene),
                               "on_render_quiet": on_render.last_summary == summary, "saved": seen["saved"],
                               "out_untouched": scenarios.visible(os.path.join(workdir, "out")) == out_before}
        # and again, nothing changed: the renders are the scene's as it is (the window redrawing meanwhile, the
        # run's helper scene and images once counted as edits, and every frame was rendered again)
        stamps = {n: os.stat(os.path.join(renders, n)).st_mtime_ns for n in scenarios.visible(renders)}
        yield lambda: bpy.ops.dream.render_animation("INVOKE_DEFAULT")
        yield lambda: not wm.dream.running
        result["again"] = {"status": wm.dream.status, "renders_kept": stamps == {
            n: os.stat(os.path.join(renders, n)).st_mtime_ns for n in scenarios.visible(renders)}}
        # a render that fails in Blender's render job (denoising asked of a Cycles without OpenImageDenoise, as
        # Debian's): the run stops and says what may have stopped it (Python cannot tell it from Esc)
        import _cycles

        result["denoiser_built"] = _cycles.with_openimagedenoise
        if not _cycles.with_openimagedenoise:
            scene.cycles.use_denoising = True
            yield lambda: bpy.ops.dream.render_animation("INVOKE_DEFAULT")
            yield lambda: not wm.dream.running
            result["failed_render"] = wm.dream.status
            scene.cycles.use_denoising = False
        finish(result)
        yield lambda: None

    return steps()


def steps_objects(workdir, zip_path):
    """The Object properties with Dream Strength drawn (a screenshot), then
    Dream Only Selected as a user runs it, undone with Ctrl+Z."""
    window = bpy.context.window_manager.windows[0]
    area = max(window.screen.areas, key=lambda a: a.width * a.height)
    torus = bpy.data.objects["Torus"]

    def strengths():  # looked up afresh: undo replaces every datablock
        return {obj.name: obj.dream.strength for obj in bpy.context.scene.objects if obj.dream.use_strength}

    def steps():
        result = {}
        for obj in bpy.context.scene.objects:
            obj.select_set(obj is torus)
        bpy.context.view_layer.objects.active = torus
        area.type = "PROPERTIES"
        yield lambda: area.spaces.active.type == "PROPERTIES"
        area.spaces.active.context = "OBJECT"
        torus.dream.strength = 1.5
        yield lambda: None  # one redraw with the panel
        yield lambda: None
        shot = os.path.join(workdir, "object_panel.png")
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.screen.screenshot_area(filepath=shot) if hasattr(bpy.ops.screen, "screenshot_area") else \
                bpy.ops.screen.screenshot(filepath=shot)
        result["screenshot"] = shot
        bpy.ops.ed.undo_push(message="before")
        result["only"] = sorted(bpy.ops.dream.only_selected("EXEC_DEFAULT", True))
        result["after_only"] = strengths()
        bpy.ops.ed.undo()
        yield lambda: None
        result["after_undo"] = strengths()
        finish(result)
        yield lambda: None

    return steps()


def steps_install(workdir, zip_path):
    """Install Dream Server as a user presses it: the window stays live, Cancel
    stops it, pressing it again carries on and ends with a tested server;
    the add-on's preferences are drawn meanwhile (a screenshot)."""
    wm = bpy.context.window_manager
    prefs = bpy.context.preferences
    prefs.active_section = "ADDONS"
    wm.addon_search = "Dream Renders"
    import addon_utils

    for module in addon_utils.modules():  # the Add-ons list draws from these, not the imported module
        if module.__name__ == scenarios.ADDON:
            addon_utils.module_bl_info(module)["show_expanded"] = True  # its preferences are drawn

    def steps():
        result = {}
        yield lambda: bpy.ops.screen.userpref_show()
        yield lambda: bpy.ops.dream.install_server("INVOKE_DEFAULT")
        result["installing"] = wm.dream.installing
        yield lambda: bpy.ops.dream.cancel_install()
        yield lambda: not wm.dream.installing
        result["cancelled"] = wm.dream.install_status
        yield lambda: bpy.ops.dream.install_server("INVOKE_DEFAULT")
        yield lambda: not wm.dream.installing and wm.dream.server_info.startswith(("dream server", "Failed"))
        result["status"] = wm.dream.install_status
        result["info"] = wm.dream.server_info
        for area in wm.windows[-1].screen.areas:
            area.tag_redraw()
        yield lambda: None  # drawn with the result
        yield lambda: None
        window = wm.windows[-1]
        shot = os.path.join(workdir, "preferences.png")
        with bpy.context.temp_override(window=window, area=window.screen.areas[0]):
            bpy.ops.screen.screenshot_area(filepath=shot) if hasattr(bpy.ops.screen, "screenshot_area") else \
                bpy.ops.screen.screenshot(filepath=shot)
        result["screenshot"] = shot
        finish(result)
        yield lambda: None

    return steps()


def steps_live(workdir, zip_path):
    """Live Dream as an artist uses it: toggled on in the 3D view's header,
    dreams arrive while the cube moves, deepen to full once it holds still,
    the drawn view (a screenshot of the area) is dreamed; toggled off it is
    plain again. A probe timer measures what it costs the window: how late
    a 10 ms timer fires, with and without Live Dream."""
    scenarios.install(zip_path)
    wm = bpy.context.window_manager
    window = wm.windows[0]
    area = max((a for a in window.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
    region = next(r for r in area.regions if r.type == "WINDOW")
    cube = bpy.data.objects["Cube"]
    home = tuple(cube.location)
    probe = {"gaps": [], "last": None, "on": True}

    def probe_tick():  # the window's own responsiveness: a 10 ms timer's lateness
        now = time.monotonic()
        if probe["last"] is not None:
            probe["gaps"].append(now - probe["last"])
        probe["last"] = now
        return 0.01 if probe["on"] else None

    def lateness() -> dict:
        gaps, probe["gaps"] = sorted(probe["gaps"]), []
        if not gaps:
            return {}
        return {"ticks": len(gaps), "median_ms": round(1000 * gaps[len(gaps) // 2], 1),
                "p95_ms": round(1000 * gaps[int(len(gaps) * 0.95)], 1), "max_ms": round(1000 * gaps[-1], 1)}

    motion = {"on": False, "phase": 0, "ticks": 0, "at": 0.0}

    def move():  # the artist drags the cube: a little each frame
        if not motion["on"]:
            return None
        motion["phase"] += 1
        motion["ticks"] += 1
        cube.location.x = home[0] + 1.5 * ((motion["phase"] // 60) % 2 * 2 - 1) * ((motion["phase"] % 60) / 60 - 0.5)
        cube.location.z = home[2] + 0.3 * ((motion["phase"] % 40) / 40)
        return 1 / 30

    def shoot(name: str) -> str:
        path = os.path.join(workdir, name)
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.screen.screenshot_area(filepath=path)
        return path

    def live(**options):
        with bpy.context.temp_override(window=window, area=area, region=region):
            return sorted(bpy.ops.dream.live_viewport(**options))

    def live_figures() -> dict:
        d = wm.dream_live
        return {"updates": d.updates, "fps": round(d.fps, 2), "latency_ms": round(d.latency_ms, 1),
                "width": d.width, "height": d.height, "depth": round(d.depth, 3), "captures": d.captures,
                "main_thread_ms": round(d.main_thread_ms, 1), "status": d.status}

    def moving(ticks: int):
        """Starts the cube moving for ``ticks`` ticks of its timer; the check that it is done."""
        motion.update(on=True, ticks=0, at=time.monotonic())
        bpy.app.timers.register(move, first_interval=0.0)
        lateness()
        return lambda: motion["ticks"] >= ticks

    def motion_figures() -> dict:
        seconds = time.monotonic() - motion["at"]
        return {"seconds": round(seconds, 2), "moves_a_second": round(motion["ticks"] / seconds, 2),
                "window": lateness()}

    def steps():
        result = {"region": [region.width, region.height]}
        bpy.context.preferences.view.show_splash = False
        for obj in bpy.context.selected_objects:
            obj.select_set(False)  # no selection outline: the view as rendered
        bpy.app.timers.register(probe_tick, first_interval=0.0)
        yield lambda: len(probe["gaps"]) >= 100  # about a second of the window alone
        result["plain_window"] = lateness()
        result["plain"] = shoot("plain.png")
        yield moving(20)  # not measured: software drawing compiles each shader on first use, slowing the first moves
        motion["on"] = False
        yield lambda: not bpy.app.timers.is_registered(move)
        cube.location = home
        yield moving(40)  # the same motion without Live Dream: what the window does on its own
        motion["on"] = False
        result["moving_plain"] = motion_figures()
        cube.location = home
        wm.dream.status = "Live Dream: stopped: a session before lost the server"  # said by an earlier stop
        live(width=256)
        result["panel_on"] = wm.dream.status
        live()  # off before its first dream
        result["panel_off_at_once"] = wm.dream.status
        result["toggled_on"] = live(width=256)
        yield lambda: wm.dream_live.updates >= 1
        result["first"] = live_figures()
        before = wm.dream_live.updates
        done = moving(40)
        yield lambda: done() and wm.dream_live.updates >= before + 10
        motion["on"] = False
        result["moving"] = dict(live_figures(), **motion_figures(), updates_while_moving=wm.dream_live.updates - before)
        cube.location = home
        still = {"at": time.monotonic()}
        yield lambda: wm.dream_live.depth >= 1.0
        result["full_after_s"] = round(time.monotonic() - still["at"], 2)
        result["full"] = live_figures()
        captures = wm.dream_live.captures
        lateness()
        yield lambda: len(probe["gaps"]) >= 100  # about a second held still
        result["captures_held_still"] = wm.dream_live.captures - captures
        result["still_window"] = lateness()
        result["dreamed"] = shoot("dreamed.png")
        drawn = wm.dream_live.updates
        bpy.context.scene.dream.mix = 0.0  # the same dream shown at Mix 0: the view itself, through the round trip
        yield lambda: wm.dream_live.updates > drawn
        result["mix0"] = shoot("mix0.png")
        result["toggled_off"] = live()
        result["active_after_off"] = wm.dream_live.active
        area.tag_redraw()
        yield lambda: None  # redrawn without the dream
        yield lambda: None
        result["off"] = shoot("off.png")
        probe["on"] = False
        finish(result)
        yield lambda: None

    return steps()


def run(steps, deadline: float) -> None:
    """Drives a scenario: an action step runs once; a check step (returning
    a bool) is polled until true."""
    pending = {"check": None}

    def tick():
        try:
            return advance()
        except Exception:  # a failing step ends the run with its traceback instead of leaving Blender open
            import traceback

            finish({"error": traceback.format_exc()})
            return None

    def advance():
        if time.monotonic() > deadline:
            check = pending["check"]
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)  # a thread stuck in a handler shows
            finish({"error": "timed out", "waiting_for": f"line {check.__code__.co_firstlineno}" if check else "?",
                    "status": bpy.context.window_manager.dream.status,
                    **{name: report() for name, report in STATE.items()}})
            return None
        if pending["check"] is not None:
            with window_override():
                if not pending["check"]():
                    return POLL
            pending["check"] = None
        try:
            step = next(steps)
        except StopIteration:
            return None
        with window_override():
            outcome = step()
        if isinstance(outcome, bool) and not outcome:
            pending["check"] = step
        return POLL

    bpy.app.timers.register(tick, first_interval=1.0, persistent=True)


def main() -> None:
    args = sys.argv[sys.argv.index("--") + 1:]
    name, workdir, zip_path = args[:3]
    deadline = time.monotonic() + float(os.environ.get("DREAM_TEST_GUI_TIMEOUT", "300"))
    try:
        run(globals()[f"steps_{name}"](workdir, zip_path), deadline)
    except Exception:
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        os._exit(1)


main()
