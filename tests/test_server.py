"""End to end against a real server process on loopback (see conftest)."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from multiprocessing import AuthenticationError

import numpy as np
import pytest
from bombs import png_declaring, stop_and_fill
from conftest import ROOT, TEST_MAX_PAYLOAD_MB, TINY_PARAMS, cli, dream_raw, raw_frame, visible, write_token_file

from dream_core.io import Picture, decode_image, encode_image
from dream_core.wire import protocol as P
from dream_core.wire.client import Cancelled, DreamClient
from dream_core.wire.spawn import ServerStartError, spawn_server


def test_hello_describes_the_server(client):
    info = client.hello()
    assert info["protocol"] == P.PROTOCOL and info["device"] == "cpu"
    about = info["device_info"]
    assert about["kind"] == "CPU" and "cores" in about["name"] and 0 < about["free_memory_gib"] <= about["memory_gib"]
    lite0 = next(m for m in info["models"] if m["name"] == "lite0")
    assert lite0["offline"] and lite0["loaded"] and "block9" in lite0["layers"]


def test_prepare_is_answered_at_once_and_checked_as_a_dream_is(server, client):
    """A client says what size is coming (the add-on does as the first frame
    renders): answered at once, the work done on the device thread before
    the frames sent after it; nonsense refused by code, the connection kept."""
    assert client.prepare({"model": "lite0", "layer": "block6"}, 127, 95)["queued"]
    for params, width, height, code in ((TINY_PARAMS, 0, 96, "bad_header"), (TINY_PARAMS, 128.5, 96, "bad_header"),
                                        (TINY_PARAMS, True, 96, "bad_header"), ({"model": "nope"}, 128, 96,
                                                                                 "unknown_model"),
                                        ({"octaves": 0}, 128, 96, "bad_params"), (TINY_PARAMS, 16384, 16384,
                                                                                  "oversize"),
                                        ({"layer": "block99"}, 128, 96, "unknown_layer"),
                                        ({"layer": "block6+0.5*nope"}, 128, 96, "unknown_layer")):
        with pytest.raises(P.ProtocolError) as err:
            client.prepare(params, width, height)
        assert err.value.code == code, (params, width, height)
    dream_raw(client)  # queued behind the prepare: it has been handled when this returns
    assert "prepared lite0 for 127x95 frames: 0 shapes to compile" in server.log_tail(100000)  # nothing compiles


def test_dream_png_round_trip_with_progress(client, coffee):
    events = []
    data = encode_image(Picture(coffee, False, "uint8"), "png")
    result = client.dream(data, "png", {"octaves": 2, "iterations": 2}, progress=events.append)
    dreamed = decode_image(result.data, result.meta["format"])
    assert dreamed.pixels.shape == coffee.shape
    assert np.abs(dreamed.pixels - coffee).mean() > 0.005
    progress = [e for e in events if e["event"] == "progress"]
    assert [(e["octave"], e["iteration"]) for e in progress] == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_raw_float16_rgba_keeps_alpha(client, coffee):
    alpha = np.linspace(0, 1, coffee.shape[1], dtype=np.float32)[None].repeat(coffee.shape[0], 0)
    rgba = np.dstack([coffee, alpha]).astype("<f2")
    result = client.dream(rgba.tobytes(), "raw", TINY_PARAMS,
                          raw={"dtype": "float16", "shape": list(rgba.shape)},
                          output={"format": "raw", "dtype": "float16"})
    out = np.frombuffer(result.data, "<f2").reshape(rgba.shape)
    assert np.array_equal(out[..., 3], rgba[..., 3])


def test_exr_in_exr_out_keeps_hdr(client):
    hdr = (np.random.default_rng(0).random((40, 40, 3)) * 3).astype(np.float32)
    data = encode_image(Picture(hdr, True, "float32"), "exr")
    result = client.dream(data, "exr", dict(TINY_PARAMS, iterations=0))
    back = decode_image(result.data, "exr")
    assert back.linear and np.allclose(back.pixels, hdr, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("params, code", [
    ({"model": "alexnet"}, "unknown_model"),
    ({"layer": "block99"}, "unknown_layer"),
    ({"octaves": 0}, "bad_params"),
    ({"colour": "blue"}, "bad_params"),
    ({"channels": "3"}, "bad_params"),
    ("not a dict", "bad_params"),
])
def test_bad_params_are_errors(client, params, code):
    with pytest.raises(P.ProtocolError) as err:
        dream_raw(client, params=params)
    assert err.value.code == code
    assert dream_raw(client).data  # the same connection goes on


@pytest.mark.parametrize("shape, data, code", [
    ([0, 0, 3], b"", "too_small"),
    ([1, 100000, 3], bytes(300000), "too_small"),
    ([10, 10, 3], bytes(299), "shape_mismatch"),
    ([10, 10, 7], bytes(700), "shape_mismatch"),
    ([-1, 10, 3], b"", "bad_header"),
    ([40, 40, 3], np.full(4800, np.nan, "<f4").tobytes()[:4800], None),
    ([40, 40, 3], "<f2", None),
    ([40, 40, 3], "-inf <f2", None),
])
def test_bad_raw_images_are_errors(client, shape, data, code):
    dtype = "uint8"
    if code is None:  # NaN or infinite pixels, float32 or float16 (checked by its bits)
        wire = "<f2" if isinstance(data, str) else "<f4"
        pixels = np.full((40, 40, 3), 0.5, wire)
        pixels[39, 39, 2] = -np.inf if data == "-inf <f2" else np.nan
        data, dtype, code = pixels.tobytes(), "float16" if wire == "<f2" else "float32", "nonfinite"
    with pytest.raises(P.ProtocolError) as err:
        client.dream(data, "raw", TINY_PARAMS, raw={"dtype": dtype, "shape": shape})
    assert err.value.code == code


def test_undecodable_image_and_bad_format(client):
    with pytest.raises(P.ProtocolError) as err:
        client.dream(b"\x89PNG garbage", "png", TINY_PARAMS)
    assert err.value.code == "bad_image"
    with pytest.raises(P.ProtocolError) as err:
        client.dream(b"abc", "gif", TINY_PARAMS)
    assert err.value.code == "bad_header"


def _raw_connection(server):
    return P.connect(server.address, server.token)


def test_deeply_nested_json_gets_its_one_reply(server, client):
    """100,000 levels of nesting: a bad_header reply, not a dead connection thread."""
    conn = _raw_connection(server)
    conn.send_bytes(b"[" * 100_000 + b"]" * 100_000)
    assert P.recv_header(conn)["code"] == "bad_header"
    conn.close()
    assert dream_raw(client).data


@pytest.mark.parametrize("params", [{"octaves": 1.5}, {"iterations": 2.5}, {"seed": 1e30}, {"jitter": True}])
def test_a_fractional_count_is_a_bad_param(client, params):
    with pytest.raises(P.ProtocolError) as err:
        dream_raw(client, params=dict(TINY_PARAMS, **params))
    assert err.value.code == "bad_params" and next(iter(params)) in err.value.message


def test_loopback_means_a_loopback_address():
    for host in ("127.0.0.1", "127.9.9.9", "::1", "localhost"):
        assert P.is_loopback(host), host
    for host in ("127.attacker.example", "0.0.0.0", "10.0.0.1", "::", "", "localhost.attacker.example"):
        assert not P.is_loopback(host), host


def test_both_ends_of_a_tcp_connection_send_small_messages_at_once():
    """A request is a header and payloads written one after another: with
    Nagle's algorithm on, each small write after the first waited for the
    peer's delayed acknowledgement (~40 ms on Linux), so every frame over
    TCP took that much longer. Both ends turn it off."""
    listener = socket.create_server(("127.0.0.1", 0))
    ends = {}

    def serve():
        sock, _ = listener.accept()
        ends["server"] = P.authenticate(sock, "secret", server_side=True)

    accepting = threading.Thread(target=serve)
    accepting.start()
    ends["client"] = P.connect("127.0.0.1:%d" % listener.getsockname()[1], "secret")
    accepting.join(30)
    listener.close()
    for side, conn in ends.items():
        sock = socket.socket(fileno=conn.fileno())
        try:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), side
        finally:
            sock.detach()
        conn.close()


def test_weights_are_only_what_the_server_offers(client):
    """A token holder must not learn which files exist on the server: every
    weights path but 'default' and null is refused with the same words."""
    replies = []
    for weights in ("/etc/passwd", "/no/such/file.pth", "../lite0.pth", "x.pth"):
        with pytest.raises(P.ProtocolError) as err:
            dream_raw(client, params=dict(TINY_PARAMS, weights=weights))
        replies.append((err.value.code, err.value.message))
    assert len(set(replies)) == 1 and replies[0][0] == "bad_params", replies
    assert dream_raw(client, params=dict(TINY_PARAMS, weights=None)).data


def test_weights_from_the_servers_folder_by_name(tmp_path):
    from dream_core.serving.codec import served_weights

    (tmp_path / "mine.pth").write_bytes(b"weights")
    assert served_weights("mine.pth", str(tmp_path)) == str(tmp_path / "mine.pth")
    for refused in ("other.pth", str(tmp_path / "mine.pth"), "../mine.pth"):
        with pytest.raises(P.ProtocolError, match="--weights-dir"):
            served_weights(refused, str(tmp_path))


def test_every_typed_error_has_a_protocol_code():
    """Errors carry their code: the server reports them without reading their text."""
    from dream_core import errors

    typed = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.DreamError)]
    assert len(typed) >= 8
    assert all(c.code in P.ERRORS for c in typed)


def test_unknown_op_and_bad_version(server):
    conn = _raw_connection(server)
    P.send_message(conn, {"op": "teleport", "id": 1})
    reply = P.recv_header(conn)
    assert reply["code"] == "unknown_op" and "hello" in reply["message"]
    conn.send_bytes(b'{"v": 99, "op": "hello", "id": 2}')
    assert P.recv_header(conn)["code"] == "bad_version"
    conn.close()


def test_a_server_that_dreams_with_another_algorithm_is_refused(server, monkeypatch):
    """The records a client keeps name its release's algorithm: a server of
    another release (a farm's, upgraded apart) would make them lie."""
    with DreamClient(server.address, server.token) as ours:
        assert ours.hello()["algorithm"] == P.ALGORITHM
    monkeypatch.setattr(P, "ALGORITHM", P.ALGORITHM + 1)  # this client, a release later than the server
    with DreamClient(server.address, server.token) as later:
        with pytest.raises(P.ProtocolError, match=f"server dreams with algorithm {P.ALGORITHM - 1}, this client's "
                                                  f"records name algorithm {P.ALGORITHM}") as refused:
            later.hello()
    assert refused.value.code == "bad_version"


def test_oversize_payload_is_refused(server, client):
    conn = _raw_connection(server)
    big = bytes((TEST_MAX_PAYLOAD_MB << 20) + 1)
    try:
        P.send_message(conn, {"op": "dream", "id": 1, "payloads": [{"name": "image", "format": "raw"}]}, [big])
        assert P.recv_header(conn)["code"] == "oversize"
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server answered and closed while we were still sending
    conn.close()
    assert dream_raw(client).data


def test_client_refuses_oversize_before_sending(client):
    client.hello()
    with pytest.raises(P.ProtocolError) as err:
        client.dream(bytes((TEST_MAX_PAYLOAD_MB << 20) + 1), "png", TINY_PARAMS)
    assert err.value.code == "oversize"
    assert dream_raw(client).data


def test_wrong_token_is_refused(server, client):
    with pytest.raises(AuthenticationError):
        DreamClient(server.address, "not-the-token")
    assert dream_raw(client).data


def _tcp(server):
    family, addr = P.parse_address(server.address)
    sock = socket.create_connection(addr, timeout=10)
    return sock


def test_garbage_and_huge_lengths_close_the_connection(server, client):
    for junk in (b"GET / HTTP/1.1\r\n\r\n", struct.pack("!i", 0x7FFFFFFF) + b"x" * 10, os.urandom(300)):
        sock = _tcp(server)
        sock.sendall(junk)
        sock.settimeout(15)
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
        sock.close()
    assert dream_raw(client).data


def test_truncated_payload_and_vanished_client(server, client):
    conn = _raw_connection(server)
    conn.send_bytes(b'{"v": 2, "op": "dream", "id": 1, "payloads": [{"name": "image", "format": "png"}, '
                    b'{"name": "mask", "format": "png"}]}')
    conn.send_bytes(b"only one payload")
    conn.close()
    assert dream_raw(client).data


def test_client_disconnecting_mid_frame_does_not_hurt_others(server, client):
    doomed = DreamClient(server.address, server.token)
    started = threading.Event()

    def vanish(event):
        started.set()
        raise ConnectionAbortedError("client gone")

    with pytest.raises(ConnectionAbortedError):
        dream_raw(doomed, 96, 128, params={"octaves": 3, "iterations": 30}, progress=vanish)
    doomed.close()
    assert started.is_set()
    reference = dream_raw(client, seed=5)
    again = dream_raw(client, seed=5)
    assert reference.data == again.data


def test_cancel_from_the_same_connection(client):
    with pytest.raises(Cancelled):
        dream_raw(client, 96, 128, params={"octaves": 3, "iterations": 50}, job="shot-a",
                  should_cancel=lambda: True)
    assert dream_raw(client).data


def test_jobs_are_private_to_their_connection(server, client):
    """Two clients that pick the same job id by accident neither share temporal
    state nor cancel each other's frames."""
    coherent = dict(TINY_PARAMS, temporal="blend")
    alone = [dream_raw(client, seed=i, params=coherent, job="shot", frame=i + 1).data for i in range(3)]
    with DreamClient(server.address, server.token) as a, DreamClient(server.address, server.token) as b:
        together = []
        for i in range(3):
            together.append(dream_raw(a, seed=i, params=coherent, job="shot", frame=i + 1).data)
            dream_raw(b, seed=10 + i, params=coherent, job="shot", frame=i + 1)
        assert together == alone
        header = {"op": "dream", "id": 1, "job": "long", "params": dict(TINY_PARAMS, iterations=1000),
                  "payloads": [{"name": "image", "format": "raw", "dtype": "uint8", "shape": [40, 48, 3]}]}
        P.send_message(a.conn, header, [raw_frame(40, 48)])
        assert P.recv_header(a.conn)["event"] == "heartbeat"  # queued or running: it is on the server now
        assert b.cancel("long") == 0  # not b's to cancel
        assert a.cancel("long") == 1


def test_jobs_keep_state_until_closed(client):
    dream_raw(client, job="seq-1", frame=1)
    assert client.hello()["jobs"] >= 1
    assert client.close_job("seq-1") is True
    assert client.close_job("seq-1") is False


def test_eight_concurrent_clients_get_bit_identical_frames(server):
    frames = 10
    with DreamClient(server.address, server.token) as single:
        expected = [dream_raw(single, seed=i).data for i in range(frames)]
    results: dict = {}
    errors = []

    def worker(n):
        try:
            with DreamClient(server.address, server.token, timeout=120) as c:
                results[n] = [dream_raw(c, seed=i).data for i in range(frames)]
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    assert len(results) == 8
    for n in range(8):
        assert results[n] == expected


def test_client_runs_without_numpy_or_torch(server):
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('numpy', 'torch', 'cv2', 'OpenEXR'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
from dream_core.wire.client import DreamClient
from dream_core.wire.protocol import PROTOCOL
c = DreamClient({server.address!r}, {server.token!r})
assert c.hello()['protocol'] == PROTOCOL
r = c.dream(bytes(range(256)) * 30, 'raw', {{'octaves': 1, 'iterations': 1}},
            raw={{'dtype': 'uint8', 'shape': [40, 64, 3]}}, output={{'format': 'raw', 'dtype': 'uint8'}})
assert len(r.data) == 40 * 64 * 3
assert 'numpy' not in sys.modules and 'torch' not in sys.modules
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.slow
def test_a_process_that_ends_without_stopping_its_server_leaves_no_log(tmp_path):
    """As Blender quits with the server it started: the server ends with it,
    and its temporary log goes too."""
    script = """
import sys, tempfile
tempfile.tempdir = sys.argv[1]
from dream_core.wire.spawn import spawn_server
server = spawn_server(sys.executable, device="cpu", extra_args=["--preload", ""])
print(server.log_path is None)
"""
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True" and os.listdir(tmp_path) == []


@pytest.mark.slow
def test_spawn_reports_a_server_that_dies(tmp_path):
    with pytest.raises(ServerStartError, match="unknown device"):
        spawn_server(sys.executable, device="tpu", env={**os.environ, "PYTHONPATH": ROOT})
    with pytest.raises(ServerStartError, match="cannot start"):
        spawn_server(str(tmp_path / "no-python"))


@pytest.fixture()
def folder():
    """A folder with a short path (a Unix socket's path is at most 107 bytes), removed afterwards."""
    import shutil
    import tempfile

    made = tempfile.mkdtemp(prefix="dr-", dir="/tmp")
    yield made
    shutil.rmtree(made, ignore_errors=True)


@pytest.mark.slow
def test_serve_socket_never_takes_over_a_file_or_a_live_server(folder):
    env = {**os.environ, "PYTHONPATH": ROOT}
    precious = os.path.join(folder, "notes.txt")
    with open(precious, "w") as f:
        f.write("keep me")
    with pytest.raises(ServerStartError, match="not a socket"):
        spawn_server(sys.executable, device="cpu", env=env, listen=None,
                     extra_args=["--socket", precious, "--preload", ""])
    assert open(precious).read() == "keep me"
    path = os.path.join(folder, "dream.sock")
    live = spawn_server(sys.executable, device="cpu", env=env, extra_args=["--socket", path, "--preload", ""])
    try:
        with pytest.raises(ServerStartError, match="already listening"):
            spawn_server(sys.executable, device="cpu", env=env, extra_args=["--socket", path, "--preload", ""])
        with DreamClient(live.address, live.token) as c:
            assert c.hello()["protocol"] == P.PROTOCOL  # the first server still owns its socket
    finally:
        live.stop()
    live = spawn_server(sys.executable, device="cpu", env=env, extra_args=["--socket", path, "--preload", ""])
    fillers = stop_and_fill(live.pid, path)  # a stopped server with a full queue answers nobody, yet is alive
    try:
        with pytest.raises(ServerStartError, match="already listening"):
            spawn_server(sys.executable, device="cpu", env=env, extra_args=["--socket", path, "--preload", ""])
    finally:
        os.kill(live.pid, signal.SIGCONT)
        for filler in fillers:
            filler.close()
    with DreamClient(live.address, live.token) as c:
        assert c.hello()["protocol"] == P.PROTOCOL
    live.process.terminate()  # `kill`, as a user stops it
    assert live.process.wait(60) == 0
    assert not os.path.exists(path) and not os.path.exists(path + ".lock")  # it cleaned up after itself
    live.stop()
    for limit in (["--max-jobs", "0"], ["--model-memory-mb", "-5"], ["--job-idle-timeout", "-1"]):
        # refused by name before anything starts; in this process (a server dying as it starts is
        # test_spawn_reports_a_server_that_dies'), on a path no server can take: one that took the limit fails too
        refused = cli("serve", "--device", "cpu", "--preload", "", "--socket", precious, "--token-file",
                      os.path.join(folder, "token"), *limit)
        assert refused.returncode == 2 and limit[0] in refused.stderr and "not a socket" not in refused.stderr, \
            refused.stderr
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.path.join(folder, "stale.sock"))
    stale.close()  # a socket file nobody listens on: a crashed server's leftover
    again = spawn_server(sys.executable, device="cpu", env=env,
                         extra_args=["--socket", os.path.join(folder, "stale.sock"), "--preload", ""])
    again.stop()


def test_an_address_the_server_cannot_have_is_refused_before_pytorch_loads(folder):
    """A path that is not a socket, a port in use, a remote address: one line and status 2 at once, not after
    the seconds PyTorch takes to load."""
    precious = os.path.join(folder, "notes.txt")
    with open(precious, "w") as f:
        f.write("keep me")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    probe = ("import sys; from dream_core.cli import main; status = main(sys.argv[1:]); "
             "print('torch loaded' if 'torch' in sys.modules else 'no torch'); sys.exit(status)")
    try:
        for where, says in ((["--socket", precious], "not a socket"),
                            (["--listen", "127.0.0.1:%d" % taken.getsockname()[1]],
                             "cannot listen on 127.0.0.1:%d: Address already in use" % taken.getsockname()[1]),
                            (["--socket", os.path.join(folder, "missing", "s.sock")], "does not exist"),
                            (["--listen", "8.8.8.8:9"], "not a loopback address")):
            refused = subprocess.run([sys.executable, "-c", probe, "serve", "--device", "cpu", "--token-file",
                                      os.path.join(folder, "token"), *where], capture_output=True, text=True,
                                     cwd=ROOT, timeout=120)
            assert refused.returncode == 2 and says in refused.stderr, refused.stderr
            assert refused.stdout.strip() == "no torch", where
            assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr  # one line, nothing before it
    finally:
        taken.close()
    assert open(precious).read() == "keep me" and not os.path.exists(os.path.join(folder, "token"))  # none made


def test_a_server_unlinks_only_the_socket_it_bound(folder):
    """An orphaned server stopping late must not delete a newer server's socket."""
    from dream_core.serving.socket_path import SocketClaim, SocketInUse

    path = os.path.join(folder, "s.sock")
    older = SocketClaim(path)
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(path)
    older.bound()
    with pytest.raises(SocketInUse):
        SocketClaim(path)
    os.unlink(path)  # someone removed it, and a newer server bound the path
    newer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    newer.bind(path)
    older.release()
    assert os.path.exists(path)  # the newer one's socket is still there
    again = SocketClaim(path)  # the lock was given up; the socket nobody holds is stale
    assert not os.path.exists(path)
    again.release()
    bound.close()
    newer.close()


@pytest.mark.slow
def test_a_spawned_server_leaves_no_temporary_log(tmp_path, monkeypatch):
    import tempfile

    env = {**os.environ, "PYTHONPATH": ROOT}
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    temporary = spawn_server(sys.executable, device="cpu", env=env, extra_args=["--preload", ""], yield_cpu=True)
    assert os.listdir(tmp_path) == [] and temporary.log_path is None  # a file with no name
    if sys.platform == "linux":  # yielding: every thread of it below this process's priority (the add-on's way)
        threads = os.listdir(f"/proc/{temporary.pid}/task")
        nice = [int(open(f"/proc/{temporary.pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[16])
                for t in threads]
        assert len(threads) > 1 and set(nice) == {os.nice(0) + 10}, nice
    temporary.stop()
    assert "listening on" in temporary.log_tail()  # read through the handle kept: what the server said
    chosen = spawn_server(sys.executable, device="cpu", env=env, extra_args=["--preload", ""],
                          log_path=str(tmp_path / "server.log"))
    chosen.stop()
    assert "listening on" in (tmp_path / "server.log").read_text()  # a log the caller named stays


@pytest.mark.slow
def test_a_spawned_server_does_not_outlive_its_parent():
    """Blender killed (or a farm job ending) must not leave a server holding the GPU."""
    parent = subprocess.run([sys.executable, "-c", (
        "import os, sys; from dream_core.wire.spawn import spawn_server\n"
        "s = spawn_server(sys.executable, device='cpu', extra_args=['--preload', ''])\n"
        "print(s.pid, flush=True); os._exit(0)  # no cleanup at all, like a crash")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    pid = int(parent.stdout.split()[0])
    deadline = time.time() + 30
    while time.time() < deadline and _alive(pid):
        time.sleep(0.2)
    assert not _alive(pid), "the orphaned server is still running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # an exited child of init may linger as a zombie for a moment
        return f.read().split()[2] != "Z"


@pytest.mark.slow
def test_cli_batch_reports_a_lost_server_and_resumes(tmp_path):
    """The server dies mid-batch: one clear line, finished frames kept, a rerun finishes the rest.
    Frame 1 is small and the others large, so the server is surely busy with
    frame 2 when frame 1 appears and is killed, on a fast machine or a slow one."""
    from dream_core.io import write_image

    frames, out = tmp_path / "in", tmp_path / "out"
    rng = np.random.default_rng(0)
    for n in range(1, 5):
        size = (96, 128) if n == 1 else (640, 768)
        write_image(str(frames / f"f_{n:04d}.png"), Picture(rng.random((*size, 3)).astype(np.float32), False))
    env = {**os.environ, "PYTHONPATH": ROOT}

    def dream_through(server, *how):
        write_token_file(tmp_path / "token", server.token)
        return subprocess.Popen([sys.executable, "-m", "dream_core", "dream", str(frames), "-o", str(out),
                                 "--server", server.address, "--token-file", str(tmp_path / "token"), *how, "-q"],
                                stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)

    doomed = spawn_server(sys.executable, device="cpu", env=env, extra_args=["--preload", ""])
    run = dream_through(doomed, "--octaves", "2", "--iterations", "20")
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "f_0001.png").exists():
        time.sleep(0.1)
    doomed.process.kill()
    _, err = run.communicate(timeout=120)
    doomed.stop()
    assert run.returncode == 2 and "lost the dream server" in err and "Traceback" not in err, err
    assert "Error: )" not in err and "()" not in err, err  # a reason, not an exception's name and nothing
    assert visible(out) == ["f_0001.png"]
    fresh = spawn_server(sys.executable, device="cpu", env=env, extra_args=["--preload", ""])
    try:
        write_token_file(tmp_path / "token", fresh.token)
        again = cli("dream", str(frames), "-o", str(out), "--server", fresh.address, "--token-file",
                    str(tmp_path / "token"), "--octaves", "1", "--iterations", "1", "-q")  # in this process
        assert again.returncode == 0, again.stderr
    finally:
        fresh.stop()
    assert len(visible(out)) == 4 and all(decode_image((out / n).read_bytes(), "png") for n in visible(out))


@pytest.mark.slow
def test_cli_through_the_server(tmp_path, coffee):
    token_file = tmp_path / "token"
    proc = subprocess.Popen([sys.executable, "-m", "dream_core", "serve", "--token-file", str(token_file),
                             "--device", "cpu", "--preload", ""], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": ROOT}, cwd=ROOT, text=True)
    try:
        import json

        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready" and ready["pid"] == proc.pid
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        src = tmp_path / "in.png"
        from dream_core.io import write_image

        write_image(str(src), Picture(coffee, False, "uint8"))
        result = cli("dream", str(src), "-o", str(tmp_path / "out.png"), "--server", ready["address"],
                     "--token-file", str(token_file), "--octaves", "1", "--iterations", "2", "-q")
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "out.png").exists()
        bad = cli("dream", str(src), "-o", str(tmp_path / "o2.png"), "--server", ready["address"],
                  "--token-file", str(token_file), "--layer", "nope", "-q")
        assert bad.returncode == 2 and "unknown_layer" in bad.stderr
    finally:
        proc.terminate()
        proc.wait(10)


def test_non_loopback_needs_allow_remote():
    from dream_core.serving.server import DreamServer

    with pytest.raises(ValueError, match="allow-remote"):
        DreamServer("t", "0.0.0.0:0", device="cpu")


def test_a_second_ctrl_c_while_the_server_stops_still_gives_its_socket_path_up(tmp_path, monkeypatch):
    """Ctrl+C twice: the second lands while the server waits for its device thread to end; the socket path
    and its lock must go all the same (they stayed, and the next server had to replace them)."""
    from dream_core.serving.server import DreamServer

    path = str(tmp_path / "d.sock")
    server = DreamServer("t", f"unix:{path}", device="cpu")

    def interrupted(timeout=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(server.worker.thread, "join", interrupted)
    with pytest.raises(KeyboardInterrupt):
        server.close()
    assert sorted(os.listdir(tmp_path)) == []


def test_echo_returns_payloads_unchanged(client):
    blobs = [os.urandom(1000), b"", bytes(range(256))]
    assert client.echo(blobs) == blobs


def test_jobs_carry_the_previous_frame_for_temporal_modes(client):
    params = dict(TINY_PARAMS, temporal="blend")  # a still shot: the same picture twice
    first = dream_raw(client, seed=2, params=params, job="t-1", frame=1)
    alone = dream_raw(client, seed=2, params=params, job="t-2", frame=2)
    carried = dream_raw(client, seed=2, params=params, job="t-1", frame=2)
    assert carried.data != alone.data  # frame 2 of job t-1 saw frame 1
    skipped = dream_raw(client, seed=2, params=params, job="t-1", frame=7)  # not the next frame: fresh start
    assert skipped.data == alone.data
    with pytest.raises(P.ProtocolError) as err:
        dream_raw(client, params=dict(TINY_PARAMS, temporal="vectors"), job="t-3", frame=1)
    assert err.value.code == "bad_params" and "Vector pass" in err.value.message
    assert first.data


def test_decompression_bomb_is_refused(client, tmp_path):
    """A 4x4 EXR whose header declares 100000x100000 pixels."""
    import struct

    import OpenEXR

    path = str(tmp_path / "bomb.exr")
    channels = {c: np.zeros((4, 4), np.float32) for c in "RGB"}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
        f.write(path)
    data = bytearray(open(path, "rb").read())
    at = data.find(b"box2i", data.find(b"dataWindow")) + len(b"box2i") + 1 + 4
    data[at:at + 16] = struct.pack("<4i", 0, 0, 99999, 99999)
    with pytest.raises(P.ProtocolError) as err:
        client.dream(bytes(data), "exr", TINY_PARAMS)
    assert err.value.code == "bad_image"
    assert dream_raw(client).data
    with pytest.raises(P.ProtocolError) as err:
        client.dream(png_declaring(30000, 30000), "png", TINY_PARAMS)
    assert err.value.code == "oversize" and "megapixels" in err.value.message
    assert dream_raw(client).data  # the request was read whole: the same connection goes on


def test_jobs_and_models_past_the_caps_are_let_go_and_a_lost_job_is_refused():
    """A token holder cannot fill the server with jobs or models; a frame
    that would carry the motion of a job let go is refused (job_lost),
    never dreamed afresh as if it followed."""
    from dream_core.serving.server import DreamServer
    from dream_core.serving.worker import Capacity

    server = DreamServer("t", device="cpu", capacity=Capacity(jobs_per_connection=2, jobs=3, models=1))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    coherent = dict(TINY_PARAMS, temporal="blend")
    try:
        with DreamClient(server.address, "t") as a, DreamClient(server.address, "t") as b:
            for job in ("a", "b", "c"):
                dream_raw(a, params=coherent, job=job, frame=1)
            with pytest.raises(P.ProtocolError) as err:
                dream_raw(a, params=coherent, job="a", frame=2)
            assert err.value.code == "job_lost" and "cap of 2 jobs a connection" in err.value.message
            dream_raw(a, params=coherent, job="c", frame=2)  # still held: carries on
            dream_raw(a, params=dict(TINY_PARAMS), job="a", frame=2)  # carries nothing: fine
            dream_raw(b, params=coherent, job="x", frame=1)
            dream_raw(b, params=coherent, job="y", frame=1)  # four jobs: a's least recently used goes
            assert len(server.worker.jobs) == 3
            with pytest.raises(P.ProtocolError) as err:
                dream_raw(a, params=coherent, job="c", frame=3)
            assert err.value.code == "job_lost" and "server's cap of 3" in err.value.message
            dream_raw(a, params=coherent, job="c", frame=1)  # started again from its start: a new sequence
        assert list(server.worker.dreamers) == [("lite0", "default")]
        server.worker.dreamer("lite0", None)
        assert list(server.worker.dreamers) == [("lite0", None)]  # one model at a time: the older unloaded
    finally:
        server.shutdown()
        thread.join(timeout=60)


@pytest.mark.slow
def test_exr_requests_leave_nothing_on_disk_when_the_server_is_killed(tmp_path):
    """A kill -9 in the middle of decoding an EXR request leaves no file behind."""
    script = (
        "import os, numpy as np\n"
        "from dream_core.io import exr, Picture, decode_image, encode_image\n"
        "data = encode_image(Picture(np.zeros((8, 8, 3), np.float32), True, 'float32'), 'exr')\n"
        "exr.read_exr = lambda path: os.kill(os.getpid(), 9)\n"
        "decode_image(data, 'exr')\n")
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": ROOT,
                                                                "TMPDIR": str(tmp_path)}, timeout=120)
    assert done.returncode == -9
    assert os.listdir(tmp_path) == []


def test_cli_through_the_server_keeps_motion_and_reports_bad_tokens(server, tmp_path, monkeypatch):
    """--server with --temporal vectors: the frames form one job and the Vector pass travels along."""
    from test_imageio import _write_blender_like_exr

    from dream_core.io import read_image

    frames = tmp_path / "renders"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for n in (1, 2, 3):
        rgba = np.dstack([rng.random((48, 64, 3)), np.ones((48, 64))]).astype(np.float32)
        _write_blender_like_exr(str(frames / f"shot_{n:04d}.exr"), rgba, np.zeros((48, 64, 4), np.float32), True)
    token = tmp_path / "token"
    write_token_file(token, server.token)
    args = ["dream", str(frames), "-o", str(tmp_path / "out"), "--server", server.address, "--temporal", "vectors",
            "--octaves", "1", "--iterations", "1", "-q"]
    ok = cli(*args, "--token-file", str(token))
    assert ok.returncode == 0, ok.stderr
    assert read_image(str(tmp_path / "out" / "shot_0003.exr")).linear
    missing = cli(*args, "--token-file", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "token file not found" in missing.stderr
    write_token_file(tmp_path / "wrong", "not-the-token")
    wrong = cli(*args, "--token-file", str(tmp_path / "wrong"))
    assert wrong.returncode == 2 and "refused the token" in wrong.stderr
    os.chmod(token, 0o644)  # like ssh with a private key, a token others can read is refused
    shared = cli(*args, "--token-file", str(token))
    assert shared.returncode == 2 and "readable by other users" in shared.stderr and "chmod 600" in shared.stderr
    assert "Traceback" not in missing.stderr + wrong.stderr + shared.stderr
    # without --token-file: where serve keeps its token by default, for the same user
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    unset = cli(*args)
    assert unset.returncode == 2 and "--server needs --token-file" in unset.stderr and \
        str(tmp_path / "home" / ".dream_renders" / "token") in unset.stderr, unset.stderr
    os.makedirs(tmp_path / "home" / ".dream_renders")
    write_token_file(tmp_path / "home" / ".dream_renders" / "token", server.token)
    shutil.rmtree(tmp_path / "out")
    found = cli(*args)
    assert found.returncode == 0 and "dreamed 3 frames" in found.stderr, found.stderr


def test_frames_in_flight_are_the_pipelines_own_bit_for_bit(client, lite0):
    """Two frames in flight, raw float16 in and out, a job carried by its
    Vector passes: each reply and its carried state are, byte for byte, what
    the frame pipeline makes of the same frames in this process."""
    from dream_core.config import DreamSettings
    from dream_core.frame.pipeline import SequenceDreamer
    from dream_core.tools.bench_gpu import panning_shot
    from dream_core.wire.client import FrameRequest

    height, width = 40, 48
    shot = panning_shot(width, height, 4)
    params = dict(TINY_PARAMS, temporal="vectors")
    vectors = {"format": "raw", "dtype": "float32", "shape": [height, width, 4]}
    requests = [FrameRequest(p.pixels.astype("<f2").tobytes(), "raw", frame=i,
                             raw={"dtype": "float16", "shape": [height, width, 3]},
                             extras={"vectors": (p.vectors.astype("<f4").tobytes(), vectors)})
                for i, p in enumerate(shot, 1)]
    results = list(client.dream_many(requests, params, job="in-flight", in_flight=2,
                                     output={"format": "raw", "dtype": "float16", "state": True}))
    sequence, settings = SequenceDreamer(), DreamSettings.from_params(params)
    for number, (picture, result) in enumerate(zip(shot, results), 1):
        sent = Picture(picture.pixels.astype(np.float16).astype(np.float32), False, "float16", picture.vectors)
        expected = sequence.dream(lite0, sent, settings, frame=number)
        assert result.header["frame"] == number
        assert result.data == expected.pixels.astype("<f2").tobytes()
        assert result.state == sequence.state()


@pytest.mark.parametrize("dtype", ["float16", "float32", "uint8", "uint16"])
def test_raw_replies_are_the_pixels_converted_once(dtype):
    from dream_core.serving.codec import to_raw

    pixels = np.random.default_rng(0).random((3, 5, 4), dtype=np.float32) * 1.2 - 0.1
    strided = pixels.transpose(1, 0, 2).copy().transpose(1, 0, 2)  # as a tensor's permuted view comes back
    top = {"uint8": 255, "uint16": 65535}.get(dtype)
    wire = pixels if top is None else np.round(np.clip(pixels, 0, 1) * top)
    expected = wire.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    assert bytes(to_raw(pixels, dtype)) == expected and bytes(to_raw(strided, dtype)) == expected
