"""Our raw renders on disk, with no bpy: whether a file is a whole render,
how it is put in place, what its record keeps, and whether it is still the
scene's render now (the scene's state token, see :mod:`.scene_state`) or
why it is made again."""
from __future__ import annotations

import contextlib
import os
import shutil
from typing import NamedTuple, Optional

from . import exr_check
from .shot.atomic import temporary_beside
from .shot.provenance import Digests, FileRecord, Records
from .user_errors import UserError

CRYPTOMATTE_CHANNEL = ".CryptoObject00."


def partial_path(path: str) -> str:
    """Where Blender writes a file before it is renamed to ``path``: a hidden
    name beside it, so a crash never leaves a half-written file under the
    real one (and the next run removes what a killed one left)."""
    return temporary_beside(path)


def is_complete_render(path: str) -> bool:
    """Whether our render at ``path`` (an EXR) is whole: one cut short by a
    full disk or a crash is rendered again."""
    return os.path.isfile(path) and exr_check.is_complete_exr(path)


def disk_nearly_full(path: str) -> bool:
    try:
        return shutil.disk_usage(os.path.dirname(path)).free < 1 << 20
    except OSError:
        return False


def into_place(partial: str, path: str, frame: int) -> None:
    """The render Blender wrote at ``partial`` renamed to ``path``, only when
    it is complete; else it goes, and the error says why."""
    if not is_complete_render(partial):
        why = "the disk is full" if disk_nearly_full(partial) else "the file is missing or incomplete"
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise UserError(f"Blender could not write the render of frame {frame} to {path}: {why}")
    os.replace(partial, path)


def scene_matches(recorded: Optional[dict], now: dict) -> bool:
    """Whether a render made at state token ``recorded`` is what the scene
    renders ``now``: the same render settings, and the same session with the
    same count of edits, or the same saved file on both sides."""
    if not isinstance(recorded, dict) or recorded.get("settings") != now["settings"]:
        return False
    same_session = recorded.get("session") == now["session"] and recorded.get("edits") == now["edits"]
    return same_session or (recorded.get("file") is not None and recorded.get("file") == now["file"])


def record_render(records: Records, path: str, frame: int, token: dict, chain: str, params: dict) -> FileRecord:
    """Records a render just made: the scene state it was made from
    (:mod:`.scene_state`), its digest, and the dream settings at its frame
    (so a later chunk can check a chain, or dream it again, without
    evaluating the frame)."""
    digest = exr_check.pixel_digest(path) or Digests().of(path)  # the pixels: a new render of the same is the same
    record = FileRecord("render", token["settings"], frame=frame,
                        extra={"scene": token, "digest": digest, "chain": chain, "params": params})
    records.write_file(path, record)
    return record


def current_render(records: Records, path: str, token: dict) -> Optional[FileRecord]:
    """The record of our render at ``path`` when it is still the file we
    made and the scene would render the same now, else None."""
    record = records.file(path)
    if record is None or record.made != "render" or not scene_matches(record.extra.get("scene"), token):
        return None
    return record


def why_not_current(records: Records, path: str, token: dict) -> Optional[str]:
    """Why the render at ``path`` is not the scene's now (None: there is none)."""
    if not os.path.exists(path):
        return None
    record = records.file(path)
    if record is None or record.made != "render":
        return "not one this add-on made, or was changed on disk since"
    recorded = record.extra.get("scene") or {}
    if recorded.get("settings") != token["settings"]:
        return "of other render settings"
    return "of the scene before it was changed" if recorded.get("session") == token["session"] \
        else "from another session, and the .blend is not the one it was made from"


def render_problem(path: str, needs_cryptomatte: bool) -> Optional[str]:
    """Why our existing render at ``path`` cannot be dreamed now, or None:
    cut short, or made before any object had a strength (``needs_cryptomatte``)."""
    if not is_complete_render(path):
        return "incomplete"
    if needs_cryptomatte and not exr_check.has_channel(path, CRYPTOMATTE_CHANNEL):
        return "without the Cryptomatte pass the object strengths need"
    return None


class RenderVerdict(NamedTuple):
    """Whether a frame's render on disk is dreamed as it is (``digest``), or
    rendered again, and why (None: there is none yet, or Render Again)."""

    digest: Optional[str]
    why: Optional[str] = None
    own_problem: bool = False  # the file itself is unusable (cut short, no Cryptomatte), not the scene's state

    def message(self, frame: int) -> str:
        return f"the render of frame {frame} is {self.why}; rendering it again" \
            + ("" if self.own_problem else " (and any other frame like it)")


def render_verdict(records: Records, path: str, token: dict, *, rerender: bool,
                   needs_cryptomatte: bool) -> RenderVerdict:
    """Dream Animation's rule for the render at ``path``: it is kept when its
    record says it is the scene's render now and the file can be dreamed;
    Render Again makes every frame anew."""
    record = None if rerender else current_render(records, path, token)
    problem = render_problem(path, needs_cryptomatte) if os.path.exists(path) else None
    if record is not None and problem is None:
        return RenderVerdict(record.extra["digest"])
    if rerender:
        return RenderVerdict(None)
    return RenderVerdict(None, problem or why_not_current(records, path, token), problem is not None)
