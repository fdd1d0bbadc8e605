"""Options of ``python -m dream_core serve`` (kept apart so ``--help`` needs no torch)."""
from __future__ import annotations

import argparse


def add_serve_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--listen", metavar="HOST:PORT", help="TCP address (default 127.0.0.1 on a free port)")
    where.add_argument("--socket", metavar="PATH", help="a Unix socket path instead of TCP")
    p.add_argument("--token-file", metavar="FILE",
                   help="read the token from FILE, or create FILE (mode 0600) holding a new one")
    p.add_argument("--token-stdin", action="store_true",
                   help="read the token from the first line of standard input (how the add-on passes it)")
    p.add_argument("--exit-with-stdin", action="store_true",
                   help="stop when standard input closes: the process that started the server keeps it open, "
                        "so the server cannot outlive it (spawned servers use this)")
    p.add_argument("--allow-remote", action="store_true", help="allow listening on a non-loopback address")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--max-payload-mb", type=int, default=512, help="largest accepted message (default 512 MiB)")
    p.add_argument("--job-idle-timeout", type=float, default=600.0,
                   help="seconds after which an idle job's state is freed (default 600)")
    p.add_argument("--heartbeat", type=float, default=1.0, metavar="SECONDS",
                   help="while a frame is queued or running and nothing else is sent, tell the client it is "
                        "alive every SECONDS (default 1); clients time out on silence")
    p.add_argument("--preload", default="lite0", help="model to load at start (default lite0; '' for none)")
