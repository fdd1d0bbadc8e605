"""The CLI's commands: each takes parsed arguments and returns an exit status."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from typing import Optional

from ..config import DreamSettings, ObjectStrengths
from ..errors import BadSetting
from ..io.images import format_of
from ..io.sequences import list_frames, plan_frames, same_file
from ..shot.atomic import check_writable
from ..shot.frame_plans import FramePlan
from .parser import UsageError, config_from_args


def _check_readable(path: str | None, what: str) -> None:
    if path and not os.path.isfile(path):
        raise UsageError(f"{what} not found: {path}")


def _plan(args: argparse.Namespace):
    source, target = args.input, args.output
    if not os.path.exists(source):
        raise UsageError(f"input not found: {source}")
    if os.path.isdir(source):
        plans = _plan_folder(source, target, f".{args.format}" if args.format else None)
    else:
        format_of(source)
        if os.path.isdir(target):
            raise UsageError(f"output {target} is a folder; give a file name")
        format_of(target)
        plans = [FramePlan(1, source, target)]
    if args.shown is not None:
        plans = _with_shown(plans, args.shown, os.path.isdir(source))
    for plan in plans:
        if same_file(plan.source, plan.target):
            raise UsageError(f"output {plan.target} would overwrite the input; choose another output")
        if plan.shown is not None and same_file(plan.shown, plan.target):
            raise UsageError(f"output {plan.target} would overwrite the image as shown; choose another output")
    return plans, os.path.isdir(source)


def _check_output_folder(args: argparse.Namespace, is_folder: bool) -> None:
    """The output folder made and written to now, not after the first dream; after every other check, so a
    refused command leaves no folder behind."""
    folder = args.output if is_folder else os.path.dirname(os.path.abspath(args.output))
    try:
        check_writable(folder)
    except OSError as err:
        raise UsageError(f"cannot write in the output folder {folder}: {err.strerror}") from None


def _with_shown(plans: list[FramePlan], shown: str, is_folder: bool) -> list[FramePlan]:
    """Each plan with its render as shown (``--shown``): one image, or a
    folder's frames matched by frame number."""
    if not os.path.exists(shown):
        raise UsageError(f"--shown not found: {shown}")
    not_exr = [p.source for p in plans if format_of(p.source) != "exr"]
    if not_exr:
        raise UsageError(f"--shown is for EXR renders (scene light); {not_exr[0]} is already an image as shown")
    if not is_folder:
        if os.path.isdir(shown):
            raise UsageError("INPUT is one image, so --shown must be one image")
        format_of(shown)
        return [replace(plans[0], shown=shown)]
    if not os.path.isdir(shown):
        raise UsageError("INPUT is a folder, so --shown must be a folder of its frames as shown")
    by_frame: dict[int, str] = {}
    for plan in plan_frames(list_frames(shown), shown, None):
        if plan.frame in by_frame:
            raise UsageError(f"--shown has two images of frame {plan.frame}: {by_frame[plan.frame]} and {plan.source}")
        by_frame[plan.frame] = plan.source
    for plan in plans:
        if plan.frame not in by_frame:
            raise UsageError(f"--shown {shown} has no image of frame {plan.frame} (the render {plan.source})")
    return [replace(plan, shown=by_frame[plan.frame]) for plan in plans]


def _plan_folder(source: str, target: str, suffix: str | None) -> list[FramePlan]:
    if os.path.isfile(target):
        raise UsageError(f"input is a folder, so the output must be a folder, but {target} is a file")
    plans = plan_frames(list_frames(source), target, suffix)
    # dreaming into the input folder (with another --format): an earlier run's outputs are not inputs
    written = {os.path.abspath(p.target) for p in plans if os.path.abspath(p.target) != os.path.abspath(p.source)}
    plans = [p for p in plans if os.path.abspath(p.source) not in written]
    if not plans:
        raise UsageError(f"no image frames in {source}")
    _check_unique_targets(plans)
    return plans


def _check_chunk(args: argparse.Namespace, plans: list[FramePlan], is_folder: bool, preroll: int,
                 fade: int) -> None:
    if preroll < 0:
        raise UsageError("--preroll must be 0 or more frames")
    if fade < 0:
        raise UsageError("--fade must be 0 or more frames")
    if args.ray is not None and not is_folder:
        raise UsageError("--ray takes a folder of frames as INPUT")
    if args.lockstep < 1:
        raise UsageError("--lockstep must be 1 or more chunks")
    if args.lockstep > 1 and (not is_folder or args.server or args.ray is not None):
        raise UsageError("--lockstep dreams a folder's chunks in this process: INPUT must be a folder, without "
                         "--server or --ray")
    if args.lockstep > 1:
        first, last = args.frames or (plans[0].frame, plans[-1].frame)
        count = sum(first <= p.frame <= last for p in plans)
        if count < 2 * args.lockstep:  # a chunk of one frame is all seam: nothing would run side by side
            raise UsageError(f"--lockstep {args.lockstep} cuts the shot into chunks of at least 2 frames: it needs "
                             f"{2 * args.lockstep} frames or more, these are {count}")
    if args.frames is None:
        if fade and args.ray is None and args.lockstep == 1:
            raise UsageError("--fade needs --frames: it blends a chunk into the chunk before")
        return
    if not is_folder:
        raise UsageError("--frames takes a folder of frames as INPUT")
    first, last = args.frames
    if not any(first <= p.frame <= last for p in plans):
        raise UsageError(f"no frames {first}-{last} in {args.input}: it has frames {plans[0].frame}-{plans[-1].frame}")
    if args.ray is None and args.lockstep == 1:
        from ..batch.run import refuse_all_held

        refuse_all_held(plans, args.frames, fade)


def _check_unique_targets(plans: list[FramePlan]) -> None:
    """Two inputs that would write one output (shot0001.png and shot0001.jpg with --format png)."""
    seen: dict[str, str] = {}
    for plan in plans:
        key = os.path.abspath(plan.target)
        if key in seen:
            raise UsageError(f"{os.path.basename(seen[key])} and {os.path.basename(plan.source)} would both be "
                             f"written to {plan.target}; rename one, or dream them into separate folders")
        seen[key] = plan.source


def settings_from_args(args: argparse.Namespace) -> DreamSettings:
    _check_readable(args.weights, "weights file")
    _check_readable(args.guide, "guide image")
    objects = object_strengths(args.mask, args.mask_strength)
    mask = None if (args.mask or "").startswith(CRYPTOMATTE) else args.mask
    if mask and mask != "alpha":
        _check_readable(mask, "mask image")
    return DreamSettings(model=args.model, layer=args.layer, layer_index=args.layer_index, channels=args.channels,
                         weights=args.weights or "default", keep_colors=args.keep_colors, mask=mask,
                         objects=objects, guide=args.guide, temporal=args.temporal, mix=args.mix,
                         config=config_from_args(args))


CRYPTOMATTE = "cryptomatte:"


def object_strengths(mask: Optional[str], items: list[str]) -> Optional[ObjectStrengths]:
    """--mask cryptomatte:NAMES and --mask-strength [NAME=]S,... as strengths by object name."""
    named = [n.strip() for n in mask[len(CRYPTOMATTE):].split(",")] if (mask or "").startswith(CRYPTOMATTE) else []
    if mask is not None and mask.startswith(CRYPTOMATTE) and not all(named):
        raise UsageError("--mask cryptomatte: needs object names, e.g. cryptomatte:Statue,Tree")
    if not named and not items:
        return None
    strengths, selected, rest = {}, 1.0, 0.0 if named else 1.0
    for item in (i.strip() for text in items for i in text.split(",")):
        name, _, value = item.rpartition("=")
        number = _strength(value, item)
        if not name and not named:
            raise UsageError(f"--mask-strength {item}: a strength without a name needs --mask cryptomatte:NAMES")
        if not name:
            selected = number
        elif name == "*":
            rest = number
        else:
            strengths[name] = number
    try:
        return ObjectStrengths({**{n: selected for n in named}, **strengths}, rest, rest, require_all=True)
    except BadSetting as err:
        raise UsageError(f"--mask-strength: {err}") from None


def _strength(value: str, item: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"--mask-strength {item!r}: expected NAME=S or S with S a number from 0 to 2") from None


def cmd_dream(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    plans, is_folder = _plan(args)
    preroll, fade = _chunk_options(args, settings)
    _check_chunk(args, plans, is_folder, preroll, fade)
    _check_output_folder(args, is_folder)
    if args.ray is not None:
        done, skipped = _dream_on_ray(args, plans, settings, preroll, fade)
        waiting = ()
    else:
        result = _run(args, plans, settings, is_folder, preroll, fade)
        done, skipped, waiting = result.done, result.skipped, result.waiting
    note = f" ({skipped} already done, skipped)" if skipped else ""
    print(f"dreamed {done} frame{'s' if done != 1 else ''}{note} -> {args.output}", file=sys.stderr)
    if waiting:
        print(f"frames {waiting[0]}-{waiting[-1]} wait for the chunk before to cross-fade their seam: they are "
              "written when it ends (or run this chunk again after it)", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace, plans, settings: DreamSettings, is_folder: bool, preroll: int, fade: int):
    """A folder keeps its run's records beside the output (a run again keeps what is current); a lone image
    is always made anew, its records in a temporary folder, so nothing is left beside it."""
    from ..batch.run import run_batch
    from ..shot.provenance import Records

    def run(records=None):
        if args.lockstep > 1:
            from ..batch.side_by_side import run_in_lockstep

            return run_in_lockstep(plans, _backend(args, settings), args.lockstep, overwrite=args.overwrite,
                                   quiet=args.quiet, frames=args.frames, preroll=preroll, fade=fade)
        return run_batch(plans, _backend(args, settings), overwrite=args.overwrite or not is_folder,
                         quiet=args.quiet, frames=args.frames, preroll=preroll, fade=fade, records=records)

    if is_folder:
        return run()
    with tempfile.TemporaryDirectory(prefix="dream_records_") as folder:
        return run(Records(folder))


RAY_PREROLL, RAY_FADE = 0, 5  # measured: a seam 1.13x the flicker inside chunks, faded frames at full strength


def _chunk_options(args: argparse.Namespace, settings: DreamSettings) -> tuple[int, int]:
    """--preroll and --fade as they apply: none without a temporal mode; on Ray, by default, the measured fade
    (a pre-roll adds little once the seam is faded, docs/BENCHMARKS.md)."""
    if settings.temporal == "none":
        given = [name for name in ("preroll", "fade") if getattr(args, name)]
        if given:
            raise UsageError(f"--{given[0]} carries a chain of frames into the next: it needs --temporal "
                             "(vectors, flow, blend or auto)")
        return 0, 0
    on_ray = args.ray is not None or args.lockstep > 1  # chunks side by side: seams to fade
    preroll = args.preroll if args.preroll is not None else (RAY_PREROLL if on_ray else 0)
    fade = args.fade if args.fade is not None else (RAY_FADE if on_ray else 0)
    return preroll, fade


def _backend(args: argparse.Namespace, settings: DreamSettings):
    if args.server:
        from ..batch.remote import RemoteBackend

        return RemoteBackend.connect(args.server, args.token_file, settings)
    from ..batch.local import LocalBackend
    from ..engine.device import use_cpu_threads

    use_cpu_threads(args.threads)
    return LocalBackend(settings, device=args.device, lockstep=args.lockstep)


def _dream_on_ray(args, plans, settings, preroll: int, fade: int) -> tuple[int, int]:
    if args.server or args.frames:
        raise UsageError("--ray dreams the whole folder in chunks of its own: leave out --server and --frames")
    if args.chunk_size < 1:
        raise UsageError("--chunk-size must be 1 or more frames")
    try:
        import ray  # noqa: F401

        from ..batch.on_ray import dream_on_ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install dream-renders[ray]") from None
    return dream_on_ray(plans, settings, address=args.ray, chunk_size=args.chunk_size, preroll=preroll, fade=fade,
                        device=args.device, actors=args.ray_actors, io=args.ray_io, quiet=args.quiet)


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        rows.append({"name": name, "description": info.description, "default_layer": info.default_layer,
                     "layers": list(info.layers), "weights_offline": info.weights_offline()})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        offline = "weights offline" if row["weights_offline"] else "weights download on first use"
        print(f"{row['name']:10} {row['description']} [{offline}]")
        layers = " ".join(f"{name}*" if name == row["default_layer"] else name for name in row["layers"])
        for line in _wrap(layers):
            print(f"{'':10} {line}")
    return 0


def _wrap(text: str, width: int = 68) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def cmd_bench(args: argparse.Namespace) -> int:
    from ..tools.bench import BENCH_CONFIG, run_cpu_bench, run_transport_bench
    from ..tools.bench_gpu import lockstep_rows, run_gpu_bench

    if args.transport:
        run_transport_bench(args.device, args.repeats)
        return 0
    if args.overhead:
        from ..tools.bench_overhead import run_overhead_bench

        width, height = _bench_size(args.size or "1920x1080")
        run_overhead_bench(args.device, width, height)
        return 0
    if args.live:
        from ..tools.bench_live import run_live_bench

        run_live_bench(args.device, *_bench_size(args.size or "256x144"))
        return 0
    if args.gpu:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")] if args.sizes else \
            [(960, 540), (1920, 1080)]
        config = BENCH_CONFIG.replace(iterations=args.iterations) if args.iterations else BENCH_CONFIG
        big = None if args.sizes else (3840, 2160)
        models = tuple(args.models.split(",")) if args.models else ("googlenet", "lite0")
        run_gpu_bench(args.device, sizes, models, repeats=args.repeats, config=config, big=big,
                      server=not args.no_server)
        # chunks of a shot in lockstep: the target is at 1080p with lite0
        lockstep_rows(args.device, sizes if args.sizes else [(1920, 1080)], config=config)
        return 0

    width, height = _bench_size(args.size or "640x360")
    run_cpu_bench(args.model, width, height, args.device, args.repeats)
    return 0


def _bench_size(size: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must look like 640x360, got {size!r}") from None
    return width, height


def cmd_demo(args: argparse.Namespace) -> int:
    from ..tools.demo import run_demo

    return run_demo()
