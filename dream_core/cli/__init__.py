"""``python -m dream_core``: dream images and frame sequences, list models,
benchmark, serve. Bad input ends with one line on stderr and exit status 2.

The parser (``parser``) needs no torch; a command's module (``commands``)
loads what it needs when it runs. ``serve`` goes straight to its own
module, which opens the server's address before PyTorch loads."""
from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Optional

from .parser import UsageError, build_parser

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_LOST = 120  # as Python's own exit says that standard output could not be written

__all__ = ["main", "build_parser", "UsageError", "exit_without_teardown"]


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return _command(args.command)(args)
    except KeyboardInterrupt:
        print("stopped" if args.command == "serve" else "interrupted; finished frames are kept, run again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, ValueError) as err:
        print(f"dream_core: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # a full disk, a read-only folder, a file where a folder should be
        where = f": {err.filename}" if err.filename else ""
        frames = os.path.isdir(getattr(args, "input", None) or "")  # a sequence: what it finished is kept
        kept = "; finished frames are kept, run again to resume" if frames else ""
        print(f"dream_core: error: {err.strerror or err}{where}{kept}", file=sys.stderr)
        return EXIT_USAGE


def _command(name: str):
    if name == "serve":
        from ..serving.command import serve_from_args

        return serve_from_args
    from . import commands

    return getattr(commands, f"cmd_{name}")


def exit_without_teardown(status: int) -> None:
    """Ends the process as ``sys.exit(status)`` does, less Python's teardown of every module and object: once
    PyTorch and torchvision are loaded that teardown alone takes about 1.2 s of CPU (0.06 s this way), after the
    last frame was written, in every command, spawned server and farm task. What an exit must do is still done,
    by the calls Python's own exit makes: threads that are not daemons are let finish (thread pools told to end
    first), atexit's handlers run (temporary folders, Ray, PyTorch's compile workers, multiprocessing), and
    standard output and error are flushed."""
    shutdown_threads = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if shutdown_threads is None or run_exit_handlers is None:  # a Python without them: the usual exit
        sys.exit(status)
    shutdown_threads()
    run_exit_handlers()
    status = 0 if status is None else status
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as err:  # a full disk, a closed pipe: what the command said did not all arrive
        status = EXIT_OUTPUT_LOST
        try:
            print(f"dream_core: error: could not write the output: {getattr(err, 'strerror', None) or err}",
                  file=sys.stderr)
        except (OSError, ValueError):
            pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)
