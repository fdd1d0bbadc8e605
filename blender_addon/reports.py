"""What the add-on tells the user, and when Blender ends with a failure:
a run's progress and outcome (Dream Animation, Dream Strip, Dream Frame),
a render job's summary (Dream on Render), the server Test Connection
reached, an error in one line. Plain text
from plain values, no bpy: the shells put it in the panel and the console."""
from __future__ import annotations

import textwrap
from typing import Optional, Sequence

from .user_errors import UserError


def run_status(rendering: Optional[int], dreaming: Optional[int], upcoming: Optional[int], done: int, total: int,
               fraction: float) -> str:
    """A run's progress: the frame Blender renders for it and the frame the
    server dreams (scene numbers; a window renders ahead while it dreams),
    else the frame it comes to next (rendered, dreamed or found current),
    and how far it is."""
    doing = [f"{what} frame {frame}" for what, frame in (("rendering", rendering), ("dreaming", dreaming))
             if frame is not None]
    said = ", ".join(doing) or (f"frame {upcoming} next" if upcoming is not None else "finishing")
    return f"{said[0].upper()}{said[1:]} ({done} of {total} done, {fraction:.0%})"


def run_summary(*, dreamed: int, kept: int, rewritten: int = 0, cancelled: bool = False,
                stopped: Optional[str] = None, error: Optional[str] = None) -> str:
    """A run's outcome, as the panel's status line says it. ``stopped``: the
    run was cancelled because Blender's render of a frame ended without its
    image, which a user's Esc and a failed render both do."""
    if error is not None:
        return f"Failed: {error}"
    if stopped is not None:
        return (f"Stopped after {dreamed} frame(s): {stopped} (Esc in the render window, or the render failed: "
                "Blender's status bar and Info editor say which); run again to resume")
    if cancelled:
        return f"Cancelled after {dreamed} frame(s); run again to resume"
    return f"Done: {dreamed} frame(s) dreamed, {kept} already current" + _written_out(rewritten)


def _written_out(rewritten: int) -> str:
    """Kept dreams whose file was written anyway: it was missing (a new output path) or of other settings."""
    return f" ({rewritten} written out from the kept dreams: a file missing or of other settings)" if rewritten else ""


def render_summary(*, dreamed: int, kept: int = 0, rewritten: int = 0, prerolled: int = 0,
                   merged: Sequence[int] = (), waiting: Sequence[int] = (), cancelled: bool = False,
                   error: Optional[str] = None) -> str:
    """What a render job's dreaming came to (Dream on Render): ``dreamed``
    frames written, ``kept`` already current (``rewritten`` of them written
    out), pre-roll frames, frames cross-faded at seams, and the held frames
    still ``waiting`` for the chunk before."""
    if error:
        return f"Dream on Render failed: {error}"
    if cancelled:
        return f"Dream on Render cancelled after {dreamed} frame(s)"
    parts = [f"Dream on Render: {dreamed} frame(s) dreamed"]
    if kept:
        parts.append(f", {kept} already current")
    parts.append(_written_out(rewritten))
    if prerolled:
        parts.append(f" after {prerolled} pre-roll frame(s)")
    if merged:
        parts.append(f"; cross-faded frame(s) {', '.join(map(str, sorted(merged)))} at chunk seams")
    if waiting:
        parts.append(f"; frames {waiting[0]}-{waiting[-1]} are dreamed and held for the seam with the frames "
                     f"before {waiting[0]} (this shot's Seam Fade): they are written cross-faded when those are "
                     "dreamed too, by whichever of the two renders ends second")
    return "".join(parts)


def render_progress(written: int, total: int) -> str:
    """A render job's dreaming while it goes on (Dream on Render): it may
    outlast Blender's render. ``written``: the frames whose file is in place
    (dreamed now or already current); ``total``: those the job writes (0:
    Blender has not begun its first frame)."""
    if total == 0:
        return "Dream on Render: waiting for Blender's first frame"
    return f"Dream on Render: {written} of {total} frame(s) written, the rest on their way"


def frames_text(frames: Sequence[int]) -> str:
    """Frame numbers as a person writes them: 1-3, 7."""
    runs: list[list[int]] = []
    for frame in sorted(frames):
        if runs and frame == runs[-1][-1] + 1:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def server_description(info: dict) -> str:
    """One line: the server, its device (kind, name, free memory) and models (its hello)."""
    device = info.get("device_info") or {}
    memory = f", {device['free_memory_gib']} of {device['memory_gib']} GiB free" if device.get("memory_gib") else ""
    about = f" ({device.get('kind')}: {device.get('name')}{memory})" if device else ""
    models = ", ".join(m["name"] + ("" if m.get("offline") else " (download)") for m in info.get("models", []))
    return f"dream server {info.get('version')} on {info.get('device')}{about}; models: {models}"


def blender_reason(err: BaseException) -> str:
    """What an operator Blender ran reported, without the "Error: " its RuntimeError starts with."""
    text = str(err).strip()
    return text[len("Error: "):] if text.startswith("Error: ") else text


def why(err: BaseException) -> str:
    """What a failure says: our own errors as written, anything else with its type."""
    return str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"


def run_failure_exits(background: bool, exit_on_error: bool) -> bool:
    """A failed run ends Blender with status 1 in background mode (``blender
    -b`` and the bpy module), so render farms see it, unless the script
    that started it handles errors itself (``exit_on_error=False``)."""
    return background and exit_on_error


def render_failure_exits(background: bool, binary_path: str) -> bool:
    """A failed render job's dreaming ends Blender with status 1 in ``blender
    -b``, so a farm sees it: not the bpy module inside someone's script (it
    has no binary), and not with a window open."""
    return bool(background and binary_path)


LABEL_CHAR_PX = 7.0  # a label character's width at UI scale 1, a little over the average: wrapped lines fit
LABEL_MARGIN_PX = 40.0  # a panel's margins and indent at UI scale 1


def panel_lines(text: str, region_width: float, ui_scale: float = 1.0) -> list[str]:
    """``text`` in lines that fit a panel ``region_width`` pixels wide:
    Blender's labels do not wrap, they cut (a long error would be lost)."""
    chars = int((region_width - LABEL_MARGIN_PX * ui_scale) / (LABEL_CHAR_PX * ui_scale))
    return textwrap.wrap(text, max(20, chars)) or [""]


HEADER_CHARS = 36  # what a 3D view's header shows of a label beside its own buttons (a 1280 px window)


def header_line(text: str, short: str) -> str:
    """``text`` where it fits a header, else ``short`` and where the rest
    is: a header has a few words' room, the panel and the console have all of it."""
    return text if len(text) <= HEADER_CHARS else f"{short}: see the Dream Renders panel"


def one_line(message: str) -> str:
    """A multi-line failure as one line: its first line and, where that
    ends in a colon (a log follows), the log's last line, which says why."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[-1]}"
    return lines[0]
