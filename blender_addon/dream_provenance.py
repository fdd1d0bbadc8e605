"""What a dream depends on besides its render, and whether a link of a
chain is still the scene's: provenance comparisons both routes (Dream
Animation, Dream on Render) decide from, with no bpy."""
from __future__ import annotations

from typing import Optional

from .shot.provenance import FileRecord, Link


def dreamed_as(params: dict, view: Optional[str], dither: Optional[dict]) -> dict:
    """What a dream depends on besides its render: its settings, and when it
    acts on the image as shown, the view (``colour_management.view_of``) and
    the dither of the 8-bit file it is rounded for (:func:`dither_for`)."""
    if view is None:
        return params
    return {**params, "shown": view, **({"dither": dither} if dither else {})}


def dither_for(intensity: float, eight_bit: bool, pattern: str) -> Optional[dict]:
    """How a dream of the image as shown is rounded for an 8-bit file: with
    the noise (``pattern``, the Blender version's) and ``intensity`` Blender
    dithers the scene's renders with. The server rounds it (Blender does not
    dither an image it saves from a file), and Blender writes its levels as
    they are. None: no dither."""
    intensity = round(intensity, 6)
    if not eight_bit or intensity <= 0:
        return None
    return {"intensity": intensity, "pattern": pattern}


def link_is_current(made: Link, now: Optional[tuple[str, str]], render: Optional[FileRecord]) -> bool:
    """Whether a link's render and settings are the scene's now: ``now`` is
    (render digest, chain settings) of a frame this run has visited, else
    the frame's render record says (None: no current render)."""
    if now is not None:
        return (made.input, made.chain) == now
    return render is not None and made.input == render.extra.get("digest") \
        and made.chain == render.extra.get("chain")
