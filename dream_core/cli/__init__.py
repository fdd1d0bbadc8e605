"""``python -m dream_core``: dream images and frame sequences, list models,
benchmark, serve. Bad input ends with one line on stderr and exit status 2.

The parser (``parser``) needs no torch; a command's module (``commands``)
loads what it needs when it runs. ``serve`` goes straight to its own
module, which opens the server's address before PyTorch loads."""
from __future__ import annotations

import os
import sys
from typing import Optional

from .parser import UsageError, build_parser

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

__all__ = ["main", "build_parser", "UsageError"]


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
