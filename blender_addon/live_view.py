"""Live Dream's shell in Blender: a 3D view dreamed as the artist works.

The main thread only captures, hands off and draws: a timer captures the
view with the ``gpu`` module's offscreen drawing when the pacer says so
(:mod:`.live_pacing`) and uploads each dream that comes back as a texture;
a POST_PIXEL draw handler draws it over the view. The worker thread
(:mod:`.live_worker`) talks to the server. Off: the handler, the timer, the
textures and the server's session go, and the view is plain again.

Figures for scripts and tests: ``bpy.context.window_manager.dream_live``
(updates, fps, latency_ms, width, height, depth, captures, main_thread_ms,
status).
"""
from __future__ import annotations

import json
import time
from typing import Optional

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from . import compat, reports
from .live_pacing import LiveStats, Pacer, preview_size
from .live_worker import Capture, LiveFrame, LiveProblem, LiveWorker

TICK = 1 / 60  # s between the timer's looks: captures follow the worker, this only bounds the wait
PANEL_PREFIX = "Live Dream: "  # what Live Dream writes on the panel's status line starts so
STOPPED = "stopped: "  # the status of a Live Dream a problem ended (the header shows it until the next start)
_VIEWS: dict = {}  # area pointer -> LiveView
_SCENE_CHANGES = [0]  # depsgraph updates seen: a change of the scene is a change of the view's image


class DreamLiveStats(bpy.types.PropertyGroup):
    """Live Dream's figures (``window_manager.dream_live``), for the header and scripts."""

    active: BoolProperty(name="Live Dream", default=False)
    updates: IntProperty(name="Updates", default=0, description="Dreamed images drawn since Live Dream was turned on")
    fps: FloatProperty(name="Updates a Second", default=0.0, description="Dreamed images drawn a second, over the "
                                                                         "last 3 seconds")
    latency_ms: FloatProperty(name="Latency (ms)", default=0.0, description="From the view's capture to its dream "
                                                                            "drawn, over the last 3 seconds")
    width: IntProperty(name="Width", default=0, description="The preview's width in pixels")
    height: IntProperty(name="Height", default=0, description="The preview's height in pixels")
    depth: FloatProperty(name="Depth", default=0.0, min=0.0, max=1.0, subtype="FACTOR",
                         description="How far the dream has grown towards the full dream of the settings")
    captures: IntProperty(name="Captures", default=0, description="Views captured and sent")
    main_thread_ms: FloatProperty(name="Main Thread (ms/s)", default=0.0,
                                  description="Milliseconds a second Live Dream takes of Blender's main thread "
                                              "(capture, upload, draw), over the last 3 seconds")
    status: StringProperty(name="Status", default="")


class LiveView:
    """Live Dream in one 3D view, found again by its area's pointer each tick
    (Blender's data is looked up afresh, never held across ticks)."""

    def __init__(self, area, link, width: int) -> None:
        self.area_key = area.as_pointer()
        self.width = width
        self.worker = LiveWorker(link.connect)
        self.pacer = Pacer()
        now = time.monotonic()
        self.stats = LiveStats(now)
        self.offscreen = None
        self.texture = None
        self.undrawn: Optional[float] = None  # the capture time of a dream not drawn yet
        self.deepening = True  # the last dream can grow deeper (or none came yet)
        self.depth = 0.0
        self.size = (0, 0)
        self.captures = 0
        self.status = "reaching the dream server"
        self.busy: list = []  # (when, main-thread seconds) of each tick and draw, over the stats' window
        self.stopped = False
        self.handler = bpy.types.SpaceView3D.draw_handler_add(self._draw, (), "WINDOW", "POST_PIXEL")
        bpy.app.timers.register(self._tick, first_interval=0.0, persistent=True)

    def _find(self):
        for window in bpy.context.window_manager.windows:
            for area in window.screen.areas:
                if area.as_pointer() == self.area_key and area.type == "VIEW_3D":
                    region = next((r for r in area.regions if r.type == "WINDOW"), None)
                    return (window, area, region, area.spaces.active) if region is not None else None
        return None

    def _tick(self) -> Optional[float]:
        if self.stopped:
            return None
        began = time.perf_counter()
        found = self._find()
        if found is None:  # the area was closed, or another file loaded
            self.stop()
            return None
        window, area, region, space = found
        self._take_messages(area)
        if self.stopped:
            return None
        now = time.monotonic()
        size = preview_size(region.width, region.height, self.width)
        if size is None:
            self.status = "the view is too small to dream"
        else:
            params = window.scene.dream.to_params()
            key = _view_key(space, region, size, params)
            if self.pacer.due(now, key, self.worker.ready, self.deepening):
                self._capture(window, region, space, size, params)
                self.pacer.captured(now, key)
        self._spent(now, time.perf_counter() - began)
        _publish(self, now)
        return TICK

    def _capture(self, window, region, space, size, params) -> None:
        if self.offscreen is None or self.size != size:
            if self.offscreen is not None:
                self.offscreen.free()
            self.offscreen, self.size = compat.new_offscreen(*size), size
        captured_at = time.monotonic()
        pixels = compat.capture_view(self.offscreen, window.scene, window.view_layer, space, region)
        self.worker.offer(Capture(pixels, size[0], size[1], captured_at, params))
        self.captures += 1

    def _take_messages(self, area) -> None:
        latest = None
        while not self.worker.messages.empty():
            message = self.worker.messages.get_nowait()
            if isinstance(message, LiveFrame):
                latest = message
            elif isinstance(message, LiveProblem):
                if message.message != self.status:  # a settled view sends its refused settings again: said once
                    print(f"Dream Renders: Live Dream: {message.message}", flush=True)
                    _tell_panel(f"{PANEL_PREFIX}{reports.one_line(message.message)}")
                self.status = message.message
                self.deepening = False  # nothing more until the view or the settings change
                if message.fatal:
                    self.stop(problem=message.message)
                    return
                # the last dream is of another view or other settings: the plain view, and the reason in the header
                self.texture, self.depth = None, 0.0
                area.tag_redraw()
        if latest is not None:
            self.texture = compat.texture_from_floats(latest.width, latest.height, latest.pixels)
            self.undrawn = latest.captured_at
            if self.status:  # a problem told before is over
                _tell_panel("", only_if_live=True)
            self.deepening, self.depth, self.status = not latest.full, latest.depth, ""
            area.tag_redraw()

    def _draw(self) -> None:
        area = bpy.context.area
        if self.texture is None or area is None or area.as_pointer() != self.area_key:
            return
        began = time.perf_counter()
        region = bpy.context.region
        compat.draw_image(self.texture, region.width, region.height)
        now = time.monotonic()
        if self.undrawn is not None:
            self.stats.drawn(now, self.undrawn)
            self.undrawn = None
        self._spent(now, time.perf_counter() - began)

    def _spent(self, now: float, seconds: float) -> None:
        self.busy.append((now, seconds))
        while self.busy and self.busy[0][0] <= now - self.stats.window:
            self.busy.pop(0)

    def main_thread_ms(self, now: float) -> float:
        """Main-thread milliseconds a second spent on Live Dream, over the stats' window."""
        span = min(self.stats.window, now - self.stats.started)
        return 1000.0 * sum(s for _, s in self.busy) / span if span > 0 else 0.0

    def stop(self, problem: str = "") -> None:
        """Back to the plain view: nothing of Live Dream is left but, after
        a ``problem``, the reason (the header and the panel's status say it)."""
        if self.stopped:
            return
        self.stopped = True
        problem = reports.one_line(problem)  # the console has all of it
        self.status = f"{STOPPED}{problem}" if problem else ""
        if problem:
            _tell_panel(f"{PANEL_PREFIX}stopped: {problem}")
        else:  # turned off before its first dream: no "reaching the dream server" left behind
            _tell_panel("", only_if_live=True)
        bpy.types.SpaceView3D.draw_handler_remove(self.handler, "WINDOW")
        self.worker.stop()
        if self.offscreen is not None:
            self.offscreen.free()
        self.offscreen = self.texture = None
        _VIEWS.pop(self.area_key, None)
        if not _VIEWS and _count_changes in bpy.app.handlers.depsgraph_update_post:
            bpy.app.handlers.depsgraph_update_post.remove(_count_changes)
        found = self._find()
        if found is not None:
            found[1].tag_redraw()
        _publish(self, time.monotonic())


def _tell_panel(text: str, only_if_live: bool = False) -> None:
    """The Dream Renders panel's status line: there a long reason is shown
    whole (the header cuts it); ``only_if_live``: replaces only what Live Dream said."""
    runtime = getattr(bpy.context.window_manager, "dream", None)
    if runtime is not None:
        runtime.say(text, over=PANEL_PREFIX if only_if_live else "")


def _view_key(space, region, size: tuple, params: dict) -> tuple:
    """What the view's image depends on that is cheap to see: the view and
    projection, the region, the preview size, the shading, the scene's
    changes and the dream settings."""
    r3d = space.region_3d
    return (tuple(map(tuple, r3d.view_matrix)), tuple(map(tuple, r3d.window_matrix)), region.width, region.height,
            size, space.shading.type, _SCENE_CHANGES[0], json.dumps(params, sort_keys=True))


@bpy.app.handlers.persistent
def _count_changes(scene, depsgraph=None) -> None:
    _SCENE_CHANGES[0] += 1


def _publish(view: LiveView, now: float) -> None:
    """The figures on the window manager, written only when they change (a write redraws what shows them)."""
    stats = bpy.context.window_manager.dream_live
    values = {"active": bool(_VIEWS), "updates": view.stats.updates, "fps": round(view.stats.fps(now), 2),
              "latency_ms": round(view.stats.latency_ms(now), 1), "width": view.size[0], "height": view.size[1],
              "depth": round(view.depth, 3), "captures": view.captures,
              "main_thread_ms": round(view.main_thread_ms(now), 1), "status": view.status}
    for name, value in values.items():
        if getattr(stats, name) != value:
            setattr(stats, name, value)


def is_on(area) -> bool:
    return area is not None and area.as_pointer() in _VIEWS


def unavailable(context) -> str:
    """Why Live Dream cannot run here, or ''."""
    if bpy.app.background:
        return "Live Dream needs a window: Blender runs in the background"
    if context.area is None or context.area.type != "VIEW_3D":
        return "Live Dream works in a 3D Viewport: press it in the viewport's header"
    return ""


def start(area, link, width: int) -> LiveView:
    if not _VIEWS and _count_changes not in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.append(_count_changes)
    view = _VIEWS[area.as_pointer()] = LiveView(area, link, width)
    _publish(view, time.monotonic())  # the last session's figures go at once: a script may read them next
    _tell_panel(f"{PANEL_PREFIX}{view.status}", only_if_live=True)  # not the reason a session before stopped
    area.tag_redraw()  # the header's button shows it on now (a script's call redraws nothing by itself)
    return view


def stop(area) -> None:
    view = _VIEWS.get(area.as_pointer())
    if view is not None:
        view.stop()


@bpy.app.handlers.persistent  # stays through a file load: that is when it is needed
def stop_all(*_args) -> None:
    for view in list(_VIEWS.values()):
        view.stop()


def draw_header_button(self, context) -> None:
    """The 3D view header's toggle, and the dream's depth while it is on."""
    on = is_on(context.area)
    row = self.layout.row(align=True)
    row.operator("dream.live_viewport", text="Live Dream" if not on else "", icon="SHADERFX", depress=on)
    live = context.window_manager.dream_live
    if on:
        row.label(text=reports.header_line(live.status, "not dreamed") or f"{round(100 * live.depth)}%")
    elif live.status.startswith(STOPPED):
        row.label(text=reports.header_line(live.status, STOPPED.rstrip(": ")), icon="ERROR")


def register() -> None:
    bpy.utils.register_class(DreamLiveStats)
    bpy.types.WindowManager.dream_live = bpy.props.PointerProperty(type=DreamLiveStats)
    bpy.types.VIEW3D_HT_header.append(draw_header_button)
    bpy.app.handlers.load_pre.append(stop_all)


def unregister() -> None:
    stop_all()
    if stop_all in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(stop_all)
    bpy.types.VIEW3D_HT_header.remove(draw_header_button)
    del bpy.types.WindowManager.dream_live
    bpy.utils.unregister_class(DreamLiveStats)
