"""Live Dream on the server: the progressive engine (dream_core/frame/live_dream.py)
without sockets, latest wins with a slow dream in an in-process server,
and the ``live`` op against the session's server process."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import TINY_PARAMS

from dream_core.config import DreamConfig, DreamSettings
from dream_core.engine import image_tensor
from dream_core.frame import temporal
from dream_core.frame.live_dream import LiveDream
from dream_core.wire import protocol as P
from dream_core.wire.client import DreamClient

CONFIG = DreamConfig(octaves=3, iterations=6, tile=0, seed=3)
SETTINGS = DreamSettings(config=CONFIG)
SHIFT = 3  # px the view pans between two captures


@pytest.fixture(scope="module")
def wide(coffee):
    """The coffee photo, wider than a view: views of it pan along."""
    import cv2

    return cv2.resize(coffee, (160, 96), interpolation=cv2.INTER_AREA)


def view(wide, x: int = 0) -> torch.Tensor:
    return image_tensor(np.ascontiguousarray(wide[:, x:x + 128]))


def gain(dreamer, image: torch.Tensor, capture: torch.Tensor) -> float:
    """How much the dream raised the objective over the capture (0: not at all)."""
    objective = dreamer.objective(None)
    return temporal.dream_strength(*dreamer.scores(torch.cat([image, capture]), objective, CONFIG)) - 1.0


def until_full(live: LiveDream, dreamer, capture, settings=SETTINGS, most: int = 50):
    for count in range(1, most + 1):
        update = live.update(dreamer, capture, settings)
        if update.full:
            return update, count
    raise AssertionError(f"not at full depth after {most} updates")


def test_a_still_view_deepens_to_the_full_dream_and_then_costs_nothing(lite0, wide, monkeypatch):
    capture = view(wide)
    full = lite0.run(capture, lite0.objective(None), CONFIG)
    live = LiveDream(budget=2)
    first = live.update(lite0, capture, SETTINGS)
    assert not first.full and 0 < first.depth < 0.6 and first.iterations > 0
    done, count = until_full(live, lite0, capture)
    assert count >= 2 and done.depth == 1.0
    # the settings' whole schedule, grown a little at a time: as strong as the engine's dream in one go
    assert gain(lite0, done.image, capture) >= 0.9 * gain(lite0, full, capture) > 0.1
    runs = []
    monkeypatch.setattr(lite0, "run", lambda *a, **k: runs.append(1))
    again = live.update(lite0, capture, SETTINGS)
    assert again.full and again.iterations == 0 and runs == [] and torch.equal(again.image, done.image)


def test_a_moved_view_carries_its_dream_instead_of_restarting(lite0, wide):
    live = LiveDream(budget=2)
    before, _ = until_full(live, lite0, view(wide))
    moved = view(wide, SHIFT)
    after = live.update(lite0, moved, SETTINGS)
    restart = LiveDream(budget=2).update(lite0, moved, SETTINGS)
    assert after.moved and 0.8 < after.depth < 1.0  # the pixels that entered the view start afresh
    full_gain = gain(lite0, before.image, view(wide))
    assert gain(lite0, after.image, moved) >= 0.6 * full_gain
    assert gain(lite0, restart.image, moved) < 0.3 * full_gain
    # the pattern moved with the picture: the new detail is the old one, shifted
    old = (before.image - view(wide))[..., 8:-8, SHIFT + 8:-8].flatten()
    new = (after.image - moved)[..., 8:-8, 8:-8 - SHIFT].flatten()
    fresh = (restart.image - moved)[..., 8:-8, 8:-8 - SHIFT].flatten()
    assert torch.corrcoef(torch.stack([old, new]))[0, 1] > 0.8
    assert torch.corrcoef(torch.stack([old, fresh]))[0, 1] < 0.3


def test_a_dream_the_motion_stretched_too_far_is_dreamed_again(lite0, wide):
    """A view zoomed in capture by capture magnifies its carried detail; past
    the stretch limit (3x) it is no longer the full dream, and those pixels
    go back to the start of the schedule: the same captures with no limit
    keep them at their depth."""
    import dataclasses

    import torch.nn.functional as F

    def zoomed_depths(tuning) -> list:
        live = LiveDream(budget=2, tuning=tuning)
        until_full(live, lite0, view(wide))
        depths = []
        for step in range(1, 6):  # 1.3x a capture: 3.7x after five
            zoomed = F.interpolate(view(wide), scale_factor=1.3 ** step, mode="bilinear", align_corners=False)
            top, left = (zoomed.shape[-2] - 96) // 2, (zoomed.shape[-1] - 128) // 2
            depths.append(live.update(lite0, zoomed[..., top:top + 96, left:left + 128], SETTINGS).depth)
        return depths

    limited = zoomed_depths(temporal.TUNING)
    unlimited = zoomed_depths(dataclasses.replace(temporal.TUNING, stretch_limit=1e9))
    assert limited[:2] == pytest.approx(unlimited[:2], abs=0.02)  # 1.3x, 1.7x: within the limit
    assert limited[-1] < 0.8 * unlimited[-1], (limited, unlimited)


def test_a_stopped_update_keeps_what_it_finished(lite0, wide):
    live = LiveDream(budget=50)  # the whole schedule in one update, unless stopped
    checks = []

    def stop_in_the_second_octave() -> bool:
        checks.append(1)
        return len(checks) > CONFIG.iterations + 1

    update = live.update(lite0, view(wide), SETTINGS, should_stop=stop_in_the_second_octave)
    assert update.stopped and not update.full
    assert update.iterations == CONFIG.iterations  # the first octave, done and kept
    assert float(live.position.amin()) == CONFIG.iterations and float(live.detail.abs().amax()) > 0
    assert live.update(lite0, view(wide), SETTINGS).full  # carried on from there


def test_settings_that_change_the_pattern_start_over_the_others_do_not(lite0, wide):
    capture = view(wide)
    live = LiveDream(budget=2)
    done, _ = until_full(live, lite0, capture)
    deeper = DreamSettings(config=CONFIG.replace(iterations=9))
    update = live.update(lite0, capture, deeper)
    assert not update.full and update.depth > 0.6  # three more iterations an octave, from where it was
    mixed = DreamSettings(config=CONFIG, mix=0.5)
    live = LiveDream(budget=2)
    until_full(live, lite0, capture)
    half = live.update(lite0, capture, mixed)
    assert half.iterations == 0 and torch.allclose(half.image, capture + 0.5 * (done.image - capture), atol=1e-5)
    other_layer = DreamSettings(layer="block5", config=CONFIG)
    assert live.update(lite0, capture, other_layer).depth < 0.6  # another pattern: from the start


class _SlowDream:
    """A live dream whose step runs until told to finish (then it stops if a
    newer capture came meanwhile): the worker is busy while captures arrive."""

    started: list = []
    release = threading.Event()

    def __init__(self, budget=2.0):
        self.budget = budget

    def update(self, dreamer, rgb, settings, *, should_stop=None):
        from dream_core.frame.live_dream import LiveUpdate

        self.started.append(float(rgb.mean()))
        self.release.wait(60)
        if should_stop():
            return LiveUpdate(rgb, 0.0, False, 1, True, stopped=True)
        return LiveUpdate(rgb, 0.5, False, 2, True)


def test_latest_wins_a_slow_dream_is_stopped_and_old_captures_are_never_dreamed(monkeypatch):
    """Five captures sent while the first dreams: the first stops for the
    newer view, the three between are answered superseded without being
    dreamed, and the last is dreamed."""
    from dream_core.serving import live_sessions as serving_live
    from dream_core.serving.server import DreamServer

    monkeypatch.setattr(serving_live, "LiveDream", _SlowDream)
    _SlowDream.started, _SlowDream.release = [], threading.Event()
    server = DreamServer("t", device="cpu", heartbeat=0.05)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = P.connect(server.address, "t")
        captures = [bytes([10 * n]) * (40 * 48 * 4) for n in range(1, 6)]

        def send(request_id: int, capture: bytes) -> None:
            P.send_message(conn, {"op": "live", "id": request_id, "session": "view", "params": TINY_PARAMS,
                                  "payloads": [{"name": "image", "format": "raw", "dtype": "uint8",
                                                "shape": [40, 48, 4]}]}, [capture])

        send(1, captures[0])
        replies = {}
        while not _SlowDream.started:  # the first is dreaming (heartbeats meanwhile)
            reply = P.recv_header(conn)
            assert reply["event"] == "heartbeat", reply
        for request_id, capture in zip((2, 3, 4, 5), captures[1:]):
            send(request_id, capture)
        sessions = server.worker.live.sessions
        while not (sessions and next(iter(sessions.values())).latest.capture == captures[4]):
            _wait_for_final(conn, replies, 0, once=True)  # (heartbeats) until the server has taken the last in
            assert all(reply.get("code") != "busy" for reply in replies.values()), replies  # else: waits for good
        _SlowDream.release.set()
        for request_id in (1, 2, 3, 4, 5):
            _wait_for_final(conn, replies, request_id)
        # the first stopped at its next check (the view changed), the three between were never dreamed
        assert [replies[i]["code"] for i in (1, 2, 3, 4)] == ["superseded"] * 4, replies
        assert replies[5]["event"] == "result" and replies[5]["depth"] == 0.5
        assert [round(mean * 255 / 10) for mean in _SlowDream.started] == [1, 5]
        conn.close()
    finally:
        _SlowDream.release.set()
        server.shutdown()
        thread.join(timeout=60)


def test_a_views_captures_not_yet_answered_leave_room_for_its_newest(monkeypatch):
    """A superseded capture stays in flight until its answer is sent: a view
    sending faster than that was once refused 'busy' at its fifth capture.
    Here no answer is sent until the end: the newest capture of a view is
    always taken, while a frame of anything else finds the connection full."""
    from dream_core.serving import live_sessions as serving_live
    from dream_core.serving.server import DreamServer

    monkeypatch.setattr(serving_live, "LiveDream", _SlowDream)
    _SlowDream.started, _SlowDream.release = [], threading.Event()
    answering = threading.Event()
    relay = DreamServer._relay

    def held_relay(self, session, header, task):
        answering.wait(60)
        relay(self, session, header, task)

    monkeypatch.setattr(DreamServer, "_relay", held_relay)
    server = DreamServer("t", device="cpu", heartbeat=0.05)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = P.connect(server.address, "t")

        def send(request_id: int, view: str, op: str = "live") -> None:
            P.send_message(conn, {"op": op, "id": request_id, "session": view, "params": TINY_PARAMS,
                                  "payloads": [{"name": "image", "format": "raw", "dtype": "uint8",
                                                "shape": [40, 48, 4]}]}, [bytes([request_id]) * (40 * 48 * 4)])

        for request_id in range(1, P.MAX_IN_FLIGHT + 3):
            send(request_id, "view")
        send(20, "other view")  # the connection is full of the first view's: refused at once
        refused = P.recv_header(conn)
        assert (refused["id"], refused["event"], refused["code"]) == (20, "error", "busy"), refused
        answering.set()
        _SlowDream.release.set()
        replies = {}
        for request_id in range(1, P.MAX_IN_FLIGHT + 3):
            _wait_for_final(conn, replies, request_id)
        newest = P.MAX_IN_FLIGHT + 2
        assert replies[newest]["event"] == "result", replies
        assert {replies[i].get("code") for i in range(1, newest)} == {"superseded"}, replies
        conn.close()
    finally:
        answering.set()
        _SlowDream.release.set()
        server.shutdown()
        thread.join(timeout=60)


def test_a_newer_capture_of_the_same_view_lets_the_running_update_finish():
    from dream_core.serving.live_sessions import LiveSessions, LiveTask

    def task(capture: bytes) -> LiveTask:
        return LiveTask(SETTINGS, "view", np.zeros((32, 32, 3), np.float32), capture)

    sessions = LiveSessions()
    running, same, changed = task(b"a"), task(b"a"), task(b"b")
    sessions.submit(running)
    assert sessions.take(running).running is running
    sessions.submit(same)
    assert not running.newer.is_set()  # it only deepens the same dream: let it finish
    sessions.submit(changed)
    assert running.newer.is_set() and sessions.take(same).code == "superseded"
    assert same.events.get_nowait().code == "superseded"  # answered as the newer came, not when the worker got to it
    assert sessions.close(0, "view") and sessions.take(changed).code == "cancelled"


def _wait_for_final(conn, replies: dict, request_id: int, once: bool = False) -> None:
    """Reads replies until request ``request_id``'s final one (``once``: one message)."""
    while request_id not in replies:
        reply = P.recv_header(conn)
        P.recv_payloads(conn, reply, 1 << 24)
        if reply["event"] in ("result", "error"):
            replies[reply["id"]] = reply
        if once:
            return


def test_the_live_op_deepens_flips_rows_back_and_ends_with_close_job(server):
    height, width = 40, 48
    rng = np.random.default_rng(5)
    capture = np.repeat(np.repeat(rng.integers(0, 256, (5, 6, 4), dtype=np.uint8), 8, 0), 8, 1)
    params = dict(TINY_PARAMS, octaves=2, iterations=4)
    with DreamClient(server.address, server.token, timeout=60) as client:
        first = client.live("view-1", capture.tobytes(), width, height, params, rows="bottom_up")
        assert first.meta == {"name": "image", "format": "raw", "dtype": "uint8", "shape": [height, width, 4]}
        dreamed = np.frombuffer(first.data, np.uint8).reshape(height, width, 4)
        assert (dreamed[..., 3] == 255).all()
        assert np.abs(dreamed[..., :3].astype(int) - capture[..., :3]).mean() < 20  # the rows came back in order
        depths = [first.depth]
        while not depths or depths[-1] < 1.0:
            reply = client.live("view-1", capture.tobytes(), width, height, params, rows="bottom_up",
                                dtype="float32")
            depths.append(reply.depth)
            assert len(depths) < 30
        assert depths == sorted(depths) and reply.full and reply.meta["dtype"] == "float32"
        again = client.live("view-1", capture.tobytes(), width, height, params, rows="bottom_up", dtype="float32")
        assert again.iterations == 0 and again.data == reply.data
        assert client.close_job("view-1") and not client.close_job("view-1")
        with pytest.raises(P.ProtocolError) as err:
            client.live("view-1", capture.tobytes(), width, height, dict(params, objects={"objects": {"Cube": 0.0}}))
        assert err.value.code == "bad_params" and "Cryptomatte" in err.value.message
        with pytest.raises(P.ProtocolError) as err:
            client.live("view-1", capture.tobytes()[:-1], width, height, params)
        assert err.value.code in ("bad_header", "shape_mismatch")
        assert client.live("view-1", capture.tobytes(), width, height, params).depth < 1.0  # closed: a new one
