"""The command line's parser: every command, option and help text. No
torch here, so ``--help`` answers at once."""
from __future__ import annotations

import argparse

from ..config import DreamConfig
from ..shot.settings import BY_NAME, SETTINGS, option
from ..version import __version__

DESCRIPTION = """\
DeepDream for rendered frames and whole animations.

A pretrained network looks at the image; gradient ascent on the pixels then
amplifies whatever a chosen layer sees, octave by octave, until eyes, faces
and swirls grow out of the picture."""

EPILOG = """\
commands:
  dream     dream an image, or every frame in a folder
  models    list models, their layers, and whether their weights are offline
  bench     time our engine against a naive DeepDream loop
  serve     run the dream server the Blender add-on talks to
  demo      render an animation in Blender and dream it (offline)

examples:
  python -m dream_core dream render.png -o dreamed.png
  python -m dream_core dream frames/ -o dreamed/ --layer block10 --octaves 5
  python -m dream_core dream shot.exr -o shot_dream.exr --keep-colors --mask alpha
  python -m dream_core dream renders/ -o dreamed/ --shown renders_png/ --format exr
  python -m dream_core dream frames/ -o out/ --server 127.0.0.1:7860 --token-file ~/.dream/token
  python -m dream_core models

Run "python -m dream_core COMMAND --help" for a command's options."""

DREAM_EPILOG = """\
input and output:
  INPUT may be one image or a folder of frames. Frames are taken in frame
  order (the last number in the file name, as Blender writes them). With a
  folder, OUTPUT is a folder and each frame keeps its name; a run again keeps
  the frames that are already the dream of their source and settings as they
  are now (OUTPUT/.dream records what made each) and dreams the others, so an
  interrupted batch carries on exactly where it stopped (--overwrite redoes
  every frame). Files are written atomically and inputs are never
  overwritten. PNG (8/16-bit), JPEG, TIFF, WebP and EXR (also Blender's
  multilayer EXR: the Combined pass is dreamed) are read; the output keeps the
  input's channels, alpha and bit depth.

colour:
  Scene-linear EXR frames are dreamed in sRGB and written back linear, with
  highlights above 1.0 kept. A view transform (AgX, Filmic) compresses that
  dream with the image when the frame is viewed; to dream what the viewer
  sees, give --shown the frame as Blender shows it (its own PNG of the
  render): that image is dreamed, a PNG output is its dream as it is, and an
  EXR output carries the dream's change back to scene light through the
  frame's own view curve (the add-on's "Dream On: As Shown"). --keep-colors
  dreams brightness only and keeps the source's colours.

chunks and farms:
  --frames A-B dreams one chunk of a folder, as one machine's share. A chunk
  carries on exactly from the chunk before when that chunk has finished
  frame A-1 (its carried state is kept in OUTPUT/.dream): the same frames
  one uninterrupted run makes. Chunks dreamed side by side start their own
  chains: --preroll warms one up on the frames before A, and --fade N writes
  frames A to A+N-1 as a ramp from the chunk before's chain into this one's,
  once both chunks have dreamed (whichever ends second writes them). Every
  run keeps its records and carried states in OUTPUT/.dream, so a killed run
  carries on exactly, and frames are dreamed again when their source or the
  settings changed. --ray does the splitting itself and runs the chunks on
  Ray actors; an actor on a machine without the shared folders gets its
  frames from this command and sends the dreams back.

objects:
  Blender's Cryptomatte object pass says which object covers each pixel,
  with anti-aliased coverage at the edges. --mask cryptomatte:NAMES dreams
  only those objects; --mask-strength Character=0 keeps one object exactly as
  rendered and dreams the rest; Statue=2 dreams one twice as hard. An object
  at 0 keeps its pixels (edge pixels blend by coverage). A name the frame
  does not have is an error that lists the names it has.

examples:
  python -m dream_core dream cat.png -o cat_dream.png --octaves 5 --step 0.015
  python -m dream_core dream frames/ -o dreamed/ --mask cryptomatte:Statue --mask-strength 1.5
  python -m dream_core dream frames/ -o dreamed/ --mask-strength "Character=0,Statue=2"
  python -m dream_core dream frames/ -o dreamed/ --temporal vectors --frames 101-200 --preroll 10 --fade 5
  python -m dream_core dream frames/ -o dreamed/ --temporal vectors --ray
  python -m dream_core dream frames/ -o dreamed/ --layer "block8+0.5*block11"
  python -m dream_core dream frames/ -o dreamed/ --layer block10 --channels 3,17
  python -m dream_core dream big.exr -o big_dream.exr --tile 512"""


def _channel_list(text: str) -> list[int]:
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"channels must be integers separated by commas, got {text!r}") from None


def _frame_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"frames must be A-B or A (frame numbers), got {text!r}") from None
    if end < start:
        raise argparse.ArgumentTypeError(f"frames {text}: the last frame is before the first")
    return start, end


FORMATTER = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dream_core", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=FORMATTER)
    parser.add_argument("--version", action="version", version=f"dream_core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_dream_command(sub)
    m = sub.add_parser("models", help="list models and layers", description="List models, their layers "
                       "(the default marked *), and whether the default weights are available offline.")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    _add_bench_command(sub)
    s = sub.add_parser("serve", help="run the dream server", formatter_class=FORMATTER,
                       description="Serve dreams to the Blender add-on and to --server clients.")
    from ..serving.command import add_serve_options

    add_serve_options(s)
    sub.add_parser("demo", help="render an animation in Blender and dream it, offline",
                   description="Builds a small animated scene with bpy, renders it with Cycles, dreams every frame "
                   "through the add-on and a dream server (offline default model), and prints where it all went.")
    return parser


def _add_dream_command(sub) -> None:
    d = sub.add_parser("dream", help="dream an image or a folder of frames", formatter_class=FORMATTER,
                       description="Dream an image, or every frame of a folder.", epilog=DREAM_EPILOG)
    d.add_argument("input", metavar="INPUT", help="an image file or a folder of frames")
    d.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="output file, or folder for a folder")
    add_dream_options(d)
    d.add_argument("--shown", metavar="PATH",
                   help="the EXR render as its view transform shows it (Blender's own PNG of the frame; for a "
                        "folder, a folder of them, matched by frame number): the dream acts on what is seen, and "
                        "an EXR output gets the dream carried back to the render's scene light")
    d.add_argument("--format", choices=["png", "exr", "jpg", "tif"], help="output file type for a folder "
                   "(default: each frame's own)")
    d.add_argument("--overwrite", action="store_true",
                   help="dream every frame again (by default a frame is kept when its output is the dream these "
                        "settings make of its source now)")
    d.add_argument("--frames", type=_frame_range, metavar="A-B",
                   help="only frames A to B of a folder (a chunk of a shot; one machine's share of a farm job)")
    d.add_argument("--preroll", type=int, default=None, metavar="N",
                   help="with --frames and a temporal mode: first dream the N frames before A, not written, so "
                        "frame A starts from a warm chain (not needed when the chunk before has finished: the "
                        "chunk carries on from it exactly)")
    d.add_argument("--fade", type=int, default=None, metavar="N",
                   help="with --frames and a temporal mode: write frames A to A+N-1 as a ramp from the chunk "
                        "before's chain into this chunk's, once both have dreamed (whichever ends second writes "
                        "them; give every chunk the same --fade): one pattern dissolves into the other instead of "
                        "jumping")
    d.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="spread a folder's chunks over a Ray cluster (pip install dream-renders[ray]): one actor "
                        "per GPU, or per CPU without one (see --ray-io for machines without shared storage); "
                        "without ADDRESS, a local Ray. With a temporal mode, --fade defaults to 5 here")
    d.add_argument("--lockstep", type=int, default=1, metavar="K",
                   help="cut the folder (or --frames A-B) into K chunks and dream them side by side on one device, "
                        "their next frames as one batch (fills a GPU that one frame leaves idle; on 2 CPU cores "
                        "4 chunks gave 1.35x the frames a second); chunks, seams and resuming as with --frames "
                        "(with a temporal mode, --fade defaults to 5 here). Frames already written under another K "
                        "count as done: their dream differs from this K's only by rounding; keep one K for a shot")
    d.add_argument("--chunk-size", type=int, default=50, metavar="N", help="frames per chunk with --ray "
                   "(default 50: with the fade of 5, at most 1.1 frames dreamed per frame written)")
    d.add_argument("--ray-actors", type=int, metavar="N", help="at most N actors (default: one per GPU or CPU)")
    d.add_argument("--ray-io", choices=("auto", "shared", "driver"), default="auto",
                   help="where Ray actors read and write frames: auto (default) asks each actor whether it reaches "
                        "INPUT and OUTPUT; an actor that does reads and writes there itself, for the others this "
                        "command reads the frames, sends them and writes the dreams that come back; shared and "
                        "driver choose one way for all")
    d.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    d.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads (default 0: OMP_NUM_THREADS, else half the cores: on a busy machine more "
                        "threads wait on each other)")
    d.add_argument("--server", metavar="ADDRESS", help="dream on a running dream server instead of here: HOST:PORT, "
                   "or its Unix socket as unix:PATH (or a path with a /)")
    d.add_argument("--token-file", metavar="FILE",
                   help="the server's token (with --server; default: where serve keeps it, ~/.dream_renders/token)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _add_bench_command(sub) -> None:
    b = sub.add_parser("bench", help="benchmark the engine", formatter_class=FORMATTER,
                       description="Times our engine against a naive reference loop written the way common "
                       "public DeepDream scripts are, on the same frame, in one run.")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps (default auto)")
    b.add_argument("--size", help="frame size WxH (default 640x360; with --overhead 1920x1080)")
    b.add_argument("--model", default="lite0", help="the model the default bench times (default lite0)")
    b.add_argument("--repeats", type=int, default=3, help="frames timed per figure (default 3); a CPU takes "
                   "seconds to minutes a frame, and nothing is printed until the figures are in")
    b.add_argument("--transport", action="store_true",
                   help="instead: time a 1920x1080 RGBA frame through the server protocol alone vs dreaming it")
    b.add_argument("--overhead", action="store_true",
                   help="instead: what the server costs over the engine alone, 1920x1080 (or --size), a cheap "
                        "dream so the host work shows on a CPU: engine, whole frame, server 2 in flight and 1 at "
                        "a time, side by side")
    b.add_argument("--live", action="store_true",
                   help="instead: Live Dream through a server, a view panning then held still, one update in "
                        "flight: updates a second, latency, time to the full dream (256x144, or --size)")
    b.add_argument("--gpu", action="store_true",
                   help="instead: the GPU benchmark: naive loop, engine (compiled and not) and server for "
                        "googlenet and lite0 at 960x540 and 1920x1080 (or --sizes), TFLOP/s, share of peak, "
                        "the cost per frame of each temporal mode on a panning shot, and a 3840x2160 frame")
    b.add_argument("--sizes", help="with --gpu: frame sizes, e.g. 960x540,1920x1080")
    b.add_argument("--iterations", type=int, help="with --gpu: iterations per octave (default 10)")
    b.add_argument("--models", help="with --gpu: models to time, e.g. lite0 (default googlenet,lite0)")
    b.add_argument("--no-server", action="store_true",
                   help="with --gpu: skip the server rows (a server compiles every shape again: minutes)")


def add_dream_options(p: argparse.ArgumentParser) -> None:
    """The dream settings as options, from the one table of them
    (dream_core/shot/settings.py); the CLI's own forms where a file or a list
    stands for the setting."""
    g = p.add_argument_group("what to dream")
    _add_setting(g, "model")
    _add_setting(g, "weights", metavar="FILE")
    _add_setting(g, "layer")
    _add_setting(g, "layer_index", metavar="N")
    _add_setting(g, "channels", type=_channel_list, metavar="C,C,...")
    g.add_argument("--guide", metavar="IMAGE", help="amplify features that match this image's")
    _add_setting(g, "mask", metavar="alpha|IMAGE|cryptomatte:NAMES",
                 help="where to dream: the frame's alpha, a grey image (per-pixel step scale), or only the "
                      "objects named, e.g. cryptomatte:Statue,Tree (multilayer EXR with a Cryptomatte object pass)")
    g.add_argument("--mask-strength", metavar="[NAME=]S[,...]", action="append", default=[],
                   help="how hard objects dream, 0 (as rendered) to 2 (twice the ascent): S alone for the "
                        "objects of --mask cryptomatte:, NAME=S for one object, *=S for everything not named "
                        "(other objects and the background; default 0 with --mask cryptomatte:, else 1)")
    _add_setting(g, "keep_colors")
    _add_setting(g, "temporal")
    _add_setting(g, "mix", metavar="M")
    h = p.add_argument_group("how hard")
    for setting in SETTINGS:
        if setting.engine and setting.offered_in("cli"):
            _add_setting(h, setting.name)


def _add_setting(group, name: str, **own) -> None:
    """One setting as an option: its flag, default, type and help from the table, unless ``own`` says otherwise."""
    setting = BY_NAME[name]
    default = setting.default_in("cli")
    options = option(setting, default)
    if default is not None and type(default) is not bool:
        options["help"] += f" (default {default})"
    group.add_argument(setting.flag, **{**options, **own})


def config_from_args(args: argparse.Namespace) -> DreamConfig:
    return DreamConfig(**{s.name: getattr(args, s.name) for s in SETTINGS if s.engine})


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""
