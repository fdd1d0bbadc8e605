"""Soak and abuse benchmark for the dream server (loopback only, bounded in
time and count; not a test). A real server runs for --seconds under a mix of
legitimate clients dreaming small frames and hostile ones: malformed and
oversized requests, decompression bombs, clients vanishing mid-frame, slow
handshakes, and floods of connections that never authenticate. It prints:

- hostile requests tried, legitimate frames completed (must be all);
- server crashes, and replies that reached another connection (both must be 0);
- the server's peak memory and its growth over the run (must stay bounded);
- file descriptors and threads at the end against the start;
- how long a legitimate client waits to be served while the handshake cap is full;
- before the soak, each decompression bomb alone: its refusal and what it cost in peak memory;
- after it, whether a second ``serve --socket`` takes over a stopped server's path (it must not).

    .venv/bin/python benchmarks/soak.py [--seconds 60] [--legit 2]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bombs import exr_with_parts, png_declaring, stop_and_fill  # noqa: E402

from dream_core.wire import protocol as P  # noqa: E402
from dream_core.wire.client import DreamClient  # noqa: E402
from dream_core.wire.spawn import spawn_server  # noqa: E402

SHAPE = [40, 48, 3]
PARAMS = {"octaves": 1, "iterations": 2, "seed": 3}


def proc_status(pid: int) -> dict:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "peak_mb": int(fields["VmHWM"].split()[0]) / 1024,
            "threads": int(fields["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def bombs() -> dict[str, tuple[dict, bytes]]:
    """Requests that cost far more to serve than to send, each with the
    params and the image payload: the server must refuse them cheaply."""
    png = {"name": "image", "format": "png"}
    exr = {"name": "image", "format": "exr"}
    return {
        "PNG declaring 20000x20000": (PARAMS, png, png_declaring(20000, 20000)),
        "PNG, broken text chunk, 10000x10000": (PARAMS, png, png_declaring(10000, 10000, broken_text=True)),
        "EXR, 64x64 part and an 8192x8192 part": (PARAMS, exr, exr_with_parts([(64, 64), (8192, 8192)])),
        "EXR, parts of two sizes": (PARAMS, exr, exr_with_parts([(64, 64), (80, 80)])),
        "layer weight 1e308": (dict(PARAMS, layer="1e308*block9"), None, None),
    }


def bomb_costs(server) -> dict[str, tuple[str, float]]:
    """Each bomb once, on its own: the reply's code and how far the server's
    peak memory rose above where it was before any bomb."""
    raw = {"name": "image", "format": "raw", "dtype": "uint8", "shape": SHAPE}
    baseline = proc_status(server.pid)["peak_mb"]
    costs = {}
    for name, (params, meta, data) in bombs().items():
        meta, data = (raw, bytes(SHAPE[0] * SHAPE[1] * 3)) if meta is None else (meta, data)
        conn = P.connect(server.address, server.token)  # an oversize refusal closes the connection
        try:
            P.send_message(conn, {"op": "dream", "id": 1, "params": params, "payloads": [meta]}, [data])
            reply = P.recv_header(conn)
            while reply.get("event") not in ("result", "error"):
                P.recv_payloads(conn, reply, 1 << 24)
                reply = P.recv_header(conn)
        finally:
            conn.close()
        costs[name] = (reply.get("code", "dreamed"), proc_status(server.pid)["peak_mb"] - baseline)
    return costs


def socket_kept_from_a_stopped_server(seconds: float = 10.0) -> bool:
    """A second ``serve --socket`` on the path of a stopped server whose
    accept queue is full must refuse, not take the path over."""
    import signal
    import tempfile

    from dream_core.wire.spawn import ServerStartError

    folder = tempfile.mkdtemp(prefix="dr-")
    path = os.path.join(folder, "s.sock")
    first = spawn_server(sys.executable, device="cpu", extra_args=["--socket", path, "--preload", ""])
    fillers = stop_and_fill(first.pid, path)
    try:
        try:
            spawn_server(sys.executable, device="cpu", extra_args=["--socket", path, "--preload", ""]).stop()
            return False
        except ServerStartError:
            return True
    finally:
        os.kill(first.pid, signal.SIGCONT)
        for filler in fillers:
            filler.close()
        first.stop()
        os.rmdir(folder)


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values = {"hostile": 0, "legit_sent": 0, "legit_done": 0, "legit_failed": 0, "crossed": 0}

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.values[key] += n


def legit_client(server, stop: threading.Event, counters: Counters, seed: int) -> None:
    frame = random.Random(seed).randbytes(SHAPE[0] * SHAPE[1] * 3)
    with DreamClient(server.address, server.token, timeout=120) as client:
        while not stop.is_set():
            counters.add("legit_sent")
            try:
                client.dream(frame, "raw", PARAMS, raw={"dtype": "uint8", "shape": SHAPE},
                             output={"format": "raw", "dtype": "uint8"})
                counters.add("legit_done")
            except Exception as err:  # counted: a legitimate frame must never fail
                counters.add("legit_failed")
                print(f"legitimate frame failed: {err}", file=sys.stderr)


def hostile_requests(server, stop: threading.Event, counters: Counters, seed: int) -> None:
    """Authenticated garbage: malformed headers, bad versions, bombs, oversize, vanishing mid-frame."""
    rng = random.Random(seed)
    bomb_list = list(bombs().values())
    while not stop.is_set():
        try:
            conn = P.connect(server.address, server.token)
        except OSError:
            continue
        except AssertionError:  # the handshake read a message meant for another connection
            counters.add("crossed")
            continue
        try:
            for _ in range(50):
                counters.add("hostile")
                kind = rng.randrange(6)
                if kind == 0:
                    conn.send_bytes(rng.randbytes(rng.randrange(1, 200)))
                elif kind == 1:
                    conn.send_bytes(json.dumps({"v": 99, "op": "hello", "id": 1}).encode())
                elif kind == 2:
                    params, meta, data = rng.choice(bomb_list[:4])
                    P.send_message(conn, {"op": "dream", "id": 2, "params": params, "payloads": [meta]}, [data])
                elif kind == 3:
                    P.send_message(conn, {"op": "dream", "id": 3, "params": {"octaves": "many"},
                                          "payloads": [{"name": "image", "format": "png"}]}, [b"x"])
                elif kind == 4:
                    conn.send_bytes(b"[" * 50_000)
                else:  # a frame, then gone before it is dreamed
                    P.send_message(conn, {"op": "dream", "id": 4, "params": dict(PARAMS, iterations=50),
                                          "payloads": [{"name": "image", "format": "raw", "dtype": "uint8",
                                                        "shape": SHAPE}]}, [bytes(SHAPE[0] * SHAPE[1] * 3)])
                    break
                while conn.poll(0.5):  # read its one reply; the server may close a broken stream
                    reply = P.recv_header(conn)
                    P.recv_payloads(conn, reply, 1 << 20)
                    if reply.get("event") in ("result", "error"):
                        break
        except (OSError, EOFError, P.ProtocolError):
            pass
        finally:
            conn.close()


def handshake_flood(server, stop: threading.Event, counters: Counters, limit: int) -> None:
    """Connections that never authenticate, kept up to ``limit`` open, plus a slow trickler."""
    _, addr = P.parse_address(server.address)
    held: list[socket.socket] = []
    while not stop.is_set():
        try:
            sock = socket.create_connection(addr, timeout=5)
            sock.send(b"\x00")  # a byte of a length prefix: the server waits for the rest
            held.append(sock)
            counters.add("hostile")
        except OSError:
            pass
        if len(held) > limit:
            held.pop(0).close()
        stop.wait(0.01)
    for sock in held:
        sock.close()


def served_while_flooded(server) -> float:
    start = time.monotonic()
    with DreamClient(server.address, server.token, timeout=60) as client:
        client.hello()
    return time.monotonic() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--legit", type=int, default=2, help="legitimate clients dreaming all along")
    parser.add_argument("--hostile", type=int, default=4, help="threads sending garbage")
    args = parser.parse_args(argv)
    server = spawn_server(sys.executable, device="cpu", extra_args=["--preload", "lite0", "--max-pending", "32"])
    counters, stop = Counters(), threading.Event()
    try:
        with DreamClient(server.address, server.token) as warm:  # the model loaded before the baseline
            warm.dream(bytes(SHAPE[0] * SHAPE[1] * 3), "raw", PARAMS, raw={"dtype": "uint8", "shape": SHAPE})
        costs = bomb_costs(server)
        start = proc_status(server.pid)
        threads = [threading.Thread(target=legit_client, args=(server, stop, counters, i)) for i in range(args.legit)]
        threads += [threading.Thread(target=hostile_requests, args=(server, stop, counters, 100 + i))
                    for i in range(args.hostile)]
        threads.append(threading.Thread(target=handshake_flood, args=(server, stop, counters, 200)))
        for t in threads:
            t.start()
        stop.wait(args.seconds / 2)
        wait = served_while_flooded(server)
        stop.wait(args.seconds / 2)
        stop.set()
        for t in threads:
            t.join(180)
        time.sleep(2)  # let the server close what the clients left (reporting only)
        end = proc_status(server.pid)
        alive = server.alive()
    finally:
        server.stop()
    socket_kept = socket_kept_from_a_stopped_server()
    c = counters.values
    print("bombs, each alone: the reply and the server's peak memory over its baseline")
    for name, (code, grew) in costs.items():
        print(f"  {name:<40} {code:<16} {grew:+.0f} MB")
    print(f"a stopped server's socket kept from a second server: {'yes' if socket_kept else 'NO'}")
    print(f"soak: {args.seconds:.0f} s, {args.legit} legitimate clients, {args.hostile} hostile threads and a "
          "handshake flood (up to 200 open)")
    print(f"  hostile requests tried      {c['hostile']:>8}")
    print(f"  legitimate frames           {c['legit_done']:>8} done of {c['legit_sent']} sent, "
          f"{c['legit_failed']} failed")
    print(f"  server crashes              {0 if alive else 1:>8}")
    print(f"  replies on the wrong socket {c['crossed']:>8}")
    print(f"  memory                      {start['rss_mb']:8.0f} MB at start, {end['rss_mb']:.0f} MB at the end, "
          f"peak {end['peak_mb']:.0f} MB (growth {end['rss_mb'] - start['rss_mb']:+.0f} MB)")
    print(f"  file descriptors            {start['fds']:>8} at start, {end['fds']} at the end")
    print(f"  threads                     {start['threads']:>8} at start, {end['threads']} at the end")
    print(f"  served while flooded        {wait * 1000:8.0f} ms (hello over a fresh connection)")
    refused = all(code != "dreamed" and grew < 150 for code, grew in costs.values())
    return 0 if alive and c["legit_failed"] == 0 and c["crossed"] == 0 and refused and socket_kept else 1


if __name__ == "__main__":
    sys.exit(main())
