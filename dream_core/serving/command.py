"""``python -m dream_core serve``: its options and its start. Torch loads
only when the server starts, so ``--help`` answers at once."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from ..wire import protocol as P
from .listening import Listening

log = logging.getLogger("dream_core.server")


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
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads (default 0: OMP_NUM_THREADS, else half the cores, leaving room for Blender)")
    p.add_argument("--max-payload-mb", type=int, default=512, help="largest accepted message (default 512 MiB)")
    p.add_argument("--job-idle-timeout", type=float, default=600.0,
                   help="seconds after which an idle job's state is freed (default 600)")
    p.add_argument("--max-jobs", type=int, default=16, metavar="N",
                   help="sequences a connection keeps carried state for (default 16); past it, and past 4N for the "
                        "server, the least recently used is let go, and its next frame refused with job_lost")
    p.add_argument("--max-models", type=int, default=2, metavar="N",
                   help="models kept loaded (default 2); the least recently used is unloaded first")
    p.add_argument("--model-memory-mb", type=int, default=4096, metavar="MB",
                   help="parameters of the loaded models together (default 4096 MiB); the model a frame needs "
                        "is always kept")
    p.add_argument("--max-megapixels", type=float, default=36.0, metavar="MP",
                   help="largest image a request may hold, checked from its header before decoding "
                        "(default 36: 8K UHD fits)")
    p.add_argument("--weights-dir", metavar="DIR",
                   help="a folder of .pth weights that requests may name (by file name); without it requests may "
                        "ask only for each model's default weights")
    p.add_argument("--max-connections", type=int, default=64, metavar="N",
                   help="authenticated connections at once (default 64); more are answered 'busy'")
    p.add_argument("--max-pending", type=int, default=32, metavar="N",
                   help="connections still in the handshake (default 32); past it the oldest is dropped, so a "
                        "flood of them cannot keep real clients out")
    p.add_argument("--handshake-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="the whole handshake must be done within SECONDS (default 10)")
    p.add_argument("--idle-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="close a connection silent this long with no frame in flight (default 600)")
    p.add_argument("--heartbeat", type=float, default=1.0, metavar="SECONDS",
                   help="while a frame is queued or running and nothing else is sent, tell the client it is "
                        "alive every SECONDS (default 1); clients time out on silence")
    p.add_argument("--preload", default="lite0", help="model to load at start (default lite0; '' for none)")
    p.add_argument("--compile-cache", metavar="DIR", default=None,
                   help="where compiled engines are kept for the next start, one folder per torch, driver and GPU "
                        "(default ~/.cache/dream_renders/compiled; '' for none); used on NVIDIA GPUs, where "
                        "frames are compiled")


def _token(args: argparse.Namespace) -> str:
    if args.token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise ValueError("--token-stdin: standard input gave no token")
        return token
    path = args.token_file or P.default_token_file()
    token = P.read_or_create_token(path)
    log.info("token file: %s", path)
    return token


def _stop_when_stdin_closes(server) -> None:
    """The spawning process holds our standard input open; when it exits,
    even killed, the pipe closes and this server must not linger (it would
    hold GPU memory for nobody)."""
    while os.read(sys.stdin.fileno(), 1024):  # unbuffered: a thread blocked in a buffered read aborts the exit
        pass
    log.info("standard input closed: the process that started this server is gone; stopping")
    server.shutdown()


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def serve_from_args(args: argparse.Namespace) -> int:
    _check_limits(args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="dream-server %(levelname)s %(message)s")
    logging.getLogger("torch").setLevel(logging.WARNING)  # its statistics, logged at exit, are not this server's
    # the address first: one the server cannot have is refused before PyTorch loads (seconds), and before a
    # token file is made
    listening = Listening(args.socket or args.listen or "127.0.0.1:0", args.allow_remote)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` while PyTorch loads: stop as Ctrl+C does, giving the path up
    try:
        server, threads = _server(args, _token(args), listening)
    except BaseException:
        listening.close()
        raise
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown())  # `kill`: stop as Ctrl+C does, cleaning up
    try:
        if args.preload:
            server.worker.dreamer(args.preload, "default")  # first frame should not pay for loading
        if args.exit_with_stdin:
            threading.Thread(target=_stop_when_stdin_closes, args=(server,), daemon=True).start()
        print(P.ready_line(server.address, os.getpid()), flush=True)
        log.info("listening on %s (device %s, %d CPU threads)", server.address, server.worker.dreamer_device(),
                 threads)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    log.info("stopped")
    return 0


def _server(args: argparse.Namespace, token: str, listening: Listening):
    """The server on ``listening`` (PyTorch loads here), and its CPU threads."""
    from ..engine.device import use_cpu_threads
    from .admission import Limits
    from .codec import limit_decoders
    from .server import DreamServer
    from .worker import Capacity

    limit_decoders(args.max_megapixels)
    threads = use_cpu_threads(args.threads)
    server = DreamServer(token, listening.address, device=args.device, max_payload=args.max_payload_mb << 20,
                         job_idle_timeout=args.job_idle_timeout, heartbeat=args.heartbeat, weights_dir=args.weights_dir,
                         limits=Limits(args.max_pending, args.max_connections, args.handshake_timeout,
                                       args.idle_timeout),
                         capacity=Capacity(args.max_jobs, 4 * args.max_jobs, args.max_models,
                                           args.model_memory_mb << 20),
                         compile_cache=_compile_cache(args), listening=listening)
    return server, threads


def _compile_cache(args: argparse.Namespace):
    """The compile cache, opened where this server compiles (NVIDIA GPUs); None elsewhere or when turned off."""
    from ..engine.compiling import CompileCache, default_cache_folder
    from ..engine.device import resolve_device, uses_cuda_graphs

    if args.compile_cache == "":
        return None
    if not uses_cuda_graphs(resolve_device(args.device)):
        log.info("frames are not compiled on %s: no compile cache", resolve_device(args.device))
        return None
    cache = CompileCache(args.compile_cache or default_cache_folder())
    loaded = cache.open()
    log.info("compile cache %s (%d artefacts from earlier starts)", cache.folder, loaded)
    return cache


POSITIVE = {"max_jobs": 1, "max_models": 1, "model_memory_mb": 1, "max_payload_mb": 1, "max_connections": 1,
            "max_pending": 1, "threads": 0}
LONGER_THAN_NOTHING = ("max_megapixels", "job_idle_timeout", "handshake_timeout", "idle_timeout", "heartbeat")


def _check_limits(args: argparse.Namespace) -> None:
    """Limits that would make no server (or one that refuses everything) are refused at start, by name."""
    for name, least in POSITIVE.items():
        if getattr(args, name) < least:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(args, name)}")
    for name in LONGER_THAN_NOTHING:
        value = getattr(args, name)
        if not value > 0 or value == float("inf"):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
