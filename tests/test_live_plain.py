"""Live Dream's add-on side without Blender, in milliseconds: the preview's
size, the latest-wins slot, when to capture, the figures, and the worker
thread against a stand-in client (loaded as the add-on's plain modules, bpy
unimportable: see test_addon_plain)."""
from __future__ import annotations

import importlib
import socket
import threading
from multiprocessing.connection import Connection

import pytest
from test_addon_plain import PACKAGE, addon

pacing, worker_module = addon.live_pacing, addon.live_worker
P = importlib.import_module(f"{PACKAGE}.wire.protocol")
client_module = importlib.import_module(f"{PACKAGE}.wire.client")
ConnectionFailed = addon.server_link.ConnectionFailed


@pytest.mark.parametrize("region, width, expected", [
    ((1057, 667), 256, (256, 162)),  # the view's aspect
    ((1057, 667), 384, (384, 242)),
    ((200, 100), 384, (200, 100)),  # never wider than the view
    ((1000, 40), 256, None),  # 10 px high: too small to dream
    ((0, 0), 256, None),  # a region not laid out yet
])
def test_the_preview_is_the_views_aspect_at_the_chosen_width(region, width, expected):
    assert pacing.preview_size(*region, width) == expected


def test_a_newer_capture_replaces_the_one_waiting():
    slot = pacing.LatestSlot()
    assert slot.empty and slot.take(timeout=0) is None
    assert not slot.put("old") and slot.put("new")  # replaced, never queued behind
    assert slot.take(timeout=0) == "new" and slot.empty
    waiting = threading.Thread(target=lambda: taken.append(slot.take(timeout=30)))
    taken = []
    waiting.start()
    slot.close()  # wakes a waiting worker at once
    waiting.join(timeout=30)
    assert taken == [None]


@pytest.mark.parametrize("steps, expected", [
    ([("due", 0.0, "A", True, False)], [True]),  # a first view: capture
    ([("due", 0.0, "A", False, False)], [False]),  # the worker is busy: never queue a view
    ([("cap", 0.0, "A"), ("due", 0.1, "A", True, True)], [True]),  # still deepening: go on
    ([("cap", 0.0, "A"), ("due", 0.1, "A", True, False)], [False]),  # full and unchanged: nothing to gain
    ([("cap", 0.0, "A"), ("due", 0.1, "B", True, False)], [True]),  # the view or the scene changed
    ([("cap", 0.0, "A"), ("due", 0.6, "A", True, False), ("cap", 0.6, "A"), ("due", 5.0, "A", True, False)],
     [True, False]),  # once settled (a viewport refines a moment after a change), then never again
])
def test_when_the_view_is_captured(steps, expected):
    pacer = pacing.Pacer(settle=0.5)
    found = []
    for step in steps:
        if step[0] == "cap":
            pacer.captured(*step[1:])
        else:
            found.append(pacer.due(*step[1:]))
    assert found == expected


def test_figures_are_over_the_last_seconds():
    stats = pacing.LiveStats(started=100.0, window=3.0)
    assert stats.fps(100.5) == 0.0 and stats.latency_ms(100.5) == 0.0
    for drawn in (101.0, 101.5, 102.0):
        stats.drawn(drawn, drawn - 0.4)
    assert stats.updates == 3
    assert stats.fps(102.0) == pytest.approx(3 / 2.0)  # two seconds since the start
    assert stats.latency_ms(102.0) == pytest.approx(400.0)
    stats.drawn(104.2, 104.0)
    assert stats.fps(104.2) == pytest.approx(3 / 3.0)  # 101.0 left the window: 101.5, 102.0, 104.2 in it
    assert stats.latency_ms(104.2) == pytest.approx((400 + 400 + 200) / 3)
    assert stats.fps(110.0) == 0.0 and stats.updates == 4


class _Client:
    """A stand-in DreamClient: each live() takes its outcome from ``outcomes``
    (a reply, or an exception to raise), waiting for ``go`` first."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.go = threading.Event()
        self.go.set()
        self.sent, self.closed_jobs, self.closed = [], [], False
        self.sending = threading.Event()
        self.gone = threading.Event()  # the server closed the connection

    def hung_up(self):
        return self.gone.is_set()

    def live(self, session, image, width, height, params, **options):
        self.sent.append((session, image, width, height, params, options))
        self.sending.set()
        assert self.go.wait(30)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close_job(self, job):
        self.closed_jobs.append(job)
        return True

    def close(self):
        self.closed = True


def _reply(depth=0.5, full=False):
    return client_module.LiveReply(b"\0" * 16, {"dtype": "float32"}, depth, full, 2, True)


def _capture(pixels=b"c", at=1.0):
    return worker_module.Capture(pixels, 2, 1, at, {"layer": "block9"})


def _message(worker):
    return worker.messages.get(timeout=30)


def _ready(worker):
    for _ in range(3000):
        if worker.ready:
            return True
        threading.Event().wait(0.01)
    return False


def test_the_worker_sends_each_capture_once_and_only_the_latest_while_busy():
    client = _Client([_reply(0.3), _reply(0.6, full=True)])
    client.go.clear()
    worker = worker_module.LiveWorker(lambda: client, budget=3.0)
    assert _ready(worker)
    worker.offer(_capture(b"first", at=1.0))
    assert client.sending.wait(30) and not worker.ready  # one in flight: the main thread captures nothing
    for n in range(5):
        worker.slot.put(_capture(f"newer {n}".encode(), at=2.0 + n))  # a pipelining caller's captures
    client.go.set()
    first, second = _message(worker), _message(worker)
    assert [c[1] for c in client.sent] == [b"first", b"newer 4"]  # the three between were never sent
    assert (first.depth, first.full, first.captured_at) == (0.3, False, 1.0)
    assert (second.depth, second.full, second.captured_at) == (0.6, True, 6.0)
    session, _, width, height, params, options = client.sent[0]
    assert (width, height, params) == (2, 1, {"layer": "block9"}) and session == worker.session
    assert options == {"rows": "bottom_up", "budget": 3.0, "dtype": "float32", "linear": True}
    assert _ready(worker)
    worker.stop()
    worker.thread.join(timeout=30)
    assert client.closed_jobs == [worker.session] and client.closed  # the server's session ends with it


def test_a_refused_setting_is_reported_and_the_next_capture_goes_on():
    client = _Client([P.ProtocolError("unknown_layer", "lite0 has no layer 'block99'"),
                      P.ProtocolError("superseded", "a newer capture came first"), _reply()])
    worker = worker_module.LiveWorker(lambda: client)
    worker.offer(_capture())
    problem = _message(worker)
    assert problem == worker_module.LiveProblem("lite0 has no layer 'block99'", False)
    assert _ready(worker)
    worker.offer(_capture())  # superseded: nothing to say
    assert _ready(worker)
    worker.offer(_capture())
    assert isinstance(_message(worker), worker_module.LiveFrame)
    worker.stop()


@pytest.mark.parametrize("outcome, says", [
    (P.ProtocolError("unknown_op", "unknown op 'live'"), "older than the add-on"),
    (OSError("connection reset"), "lost the dream server"),
    (EOFError(), "lost the dream server: it closed the connection"),  # an EOFError says nothing itself
    (client_module.ServerTimeout(30), "stopped answering"),
])
def test_an_old_lost_or_silent_server_ends_live_dream_saying_why(outcome, says):
    client = _Client([outcome])
    worker = worker_module.LiveWorker(lambda: client)
    worker.offer(_capture())
    problem = _message(worker)
    assert problem.fatal and says in problem.message
    worker.thread.join(timeout=30)
    assert not worker.thread.is_alive() and not worker.ready and client.closed


def test_no_server_is_reported_from_the_thread():
    def connect():
        raise ConnectionFailed("no dream server installed: press Install Dream Server")

    worker = worker_module.LiveWorker(connect)
    problem = _message(worker)
    assert problem.fatal and problem.message.startswith("no dream server installed")


def test_a_server_lost_while_the_view_is_still_ends_live_dream_without_a_capture():
    client = _Client([_reply(1.0, full=True)])
    worker = worker_module.LiveWorker(lambda: client)
    worker.offer(_capture())
    assert isinstance(_message(worker), worker_module.LiveFrame)
    assert _ready(worker)  # full depth, held still: nothing more is sent
    client.gone.set()
    problem = _message(worker)
    assert problem.fatal and "lost the dream server" in problem.message and len(client.sent) == 1
    worker.thread.join(timeout=30)
    assert not worker.thread.is_alive()


def _client_on(sock):
    client = client_module.DreamClient.__new__(client_module.DreamClient)  # the connection without a handshake
    client.conn = Connection(sock.detach())
    return client


def test_the_client_sees_a_closed_connection_without_reading():
    ours, theirs = socket.socketpair()
    client = _client_on(ours)
    assert not client.hung_up()
    theirs.sendall(b"x")
    theirs.close()
    assert not client.hung_up() and client.conn.poll(0)  # a reply still to read is not the end
    client.close()
    assert not client.hung_up()  # closed on this side: not the server's doing
    ours, theirs = socket.socketpair()
    client = _client_on(ours)
    theirs.close()
    assert client.hung_up()
    client.close()
