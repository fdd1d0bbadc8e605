"""Soak and abuse benchmark for the dream server (loopback only, bounded in
time and count; not a test). A real server runs for --seconds under a mix of
legitimate clients dreaming small frames and hostile ones: malformed and
oversized requests, decompression bombs, clients vanishing mid-frame, slow
handshakes, and floods of connections that never authenticate. It prints:

- hostile requests tried, legitimate frames completed (must be all);
- server crashes, and replies that reached another connection (both must be 0);
- the server's peak memory and its growth over the run (must stay bounded);
- file descriptors and threads at the end against the start;
- how long a legitimate client waits to be served while the handshake cap is full.

    .venv/bin/python benchmarks/soak.py [--seconds 60] [--legit 2]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
            + chunk(b"IEND", b""))


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
    bomb = png_declaring(20000, 20000)
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
                    P.send_message(conn, {"op": "dream", "id": 2, "params": PARAMS,
                                          "payloads": [{"name": "image", "format": "png"}]}, [bomb])
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
    c = counters.values
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
    return 0 if alive and c["legit_failed"] == 0 and c["crossed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
