"""Connections that never authenticate, floods, idle sessions and running out
of file descriptors: the server keeps serving real clients through all of
them. The tests run servers of their own with small limits."""
import os
import socket
import stat
import sys

import pytest
from conftest import ROOT, TINY_PARAMS, dream_raw

from dream_core.wire import protocol as P
from dream_core.wire.client import DreamClient
from dream_core.wire.spawn import spawn_server

ENV = {**os.environ, "PYTHONPATH": ROOT}
pytestmark = pytest.mark.slow  # servers of their own


def _server(*args, python=sys.executable):
    return spawn_server(python, device="cpu", env=ENV, extra_args=["--preload", "", *args])


@pytest.fixture(scope="module")
def deadlines():
    """One server for the deadline tests: a second for a handshake and for a silent session."""
    server = _server("--handshake-timeout", "1", "--idle-timeout", "1")
    yield server
    server.stop()


def _raw(server) -> socket.socket:
    _, addr = P.parse_address(server.address)
    sock = socket.create_connection(addr, timeout=60)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """Reads until the server closes (it sends its challenge first); False if it never does."""
    try:
        while sock.recv(4096):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def test_a_silent_handshake_is_cut_at_its_deadline(deadlines):
    lurker = _raw(deadlines)  # connects, never answers the challenge
    assert _closed_by_server(lurker)  # within the recv timeout of 60 s, however slow the machine
    with DreamClient(deadlines.address, deadlines.token) as client:
        assert client.hello()["protocol"] == P.PROTOCOL


def test_a_trickling_handshake_is_cut_at_its_deadline(deadlines):
    """One byte now and then resets a per-read timeout forever; the deadline
    is for the whole handshake."""
    import time

    trickler = _raw(deadlines)
    trickler.settimeout(0.3)
    closed = False
    for _ in range(100):  # 30 s at most
        try:
            trickler.send(b"\x00")
            closed = trickler.recv(4096) == b""
        except socket.timeout:
            continue
        except OSError:
            closed = True
        if closed:
            break
        time.sleep(0.2)
    assert closed


def test_a_flood_of_handshakes_does_not_keep_a_client_out():
    server = _server("--max-pending", "4")
    flood = []
    try:
        flood = [_raw(server) for _ in range(12)]
        with DreamClient(server.address, server.token) as client:  # the oldest waiting ones made room
            assert dream_raw(client, params=TINY_PARAMS).data
        dropped = sum(_closed_by_server(sock) for sock in flood[:8])
        assert dropped == 8  # the first eight were dropped to keep four waiting at most
    finally:
        for sock in flood:
            sock.close()
        server.stop()


def test_a_silent_session_is_closed_after_the_idle_limit(deadlines):
    idle = DreamClient(deadlines.address, deadlines.token, timeout=60)
    idle.hello()
    with pytest.raises(EOFError):
        idle.conn.recv_bytes()  # the server closes it: EOF, not our 60 s read timeout
    idle.close()
    with DreamClient(deadlines.address, deadlines.token) as busy:  # a dream longer than the idle limit is not cut
        assert dream_raw(busy, params=dict(TINY_PARAMS, iterations=1)).data


def test_out_of_file_descriptors_the_server_keeps_serving(tmp_path):
    """Under a small open-file limit, more connections than descriptors: the
    server backs off and drops waiting handshakes instead of dying."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nexec prlimit --nofile=96:96 {sys.executable} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    if os.system("prlimit --version >/dev/null 2>&1") != 0:
        pytest.skip("prlimit is not installed")
    server = _server("--max-pending", "500", python=str(wrapper))
    flood = []
    try:
        flood = [_raw(server) for _ in range(150)]
        assert server.alive()
        with DreamClient(server.address, server.token, timeout=60) as client:
            assert dream_raw(client, params=TINY_PARAMS).data
    finally:
        for sock in flood:
            sock.close()
        server.stop()
