"""Which chunk of a shot a render job is (Dream on Render), decided from
plain values, no bpy: Blender renders from a frame on (``-f N``: that frame
alone, ``-a``: to the end of the range); the shot is the range saved in the
.blend; a farm renders a chunk of it (``blender -b -s A -e B -a`` with
Overwrite on, the job's range starting after the shot's), which may have a
pre-roll (``--dream-write-from``) and holds its first Seam Fade frames for
the seam with the chunk before. Any other render writes every frame it
dreams."""
from __future__ import annotations

from typing import Optional

from .command_line import WRITE_FROM
from .shot.planner import ChunkPlan, plan_chunk
from .user_errors import UserError

MOVIE_ERROR = ("Dream on Render writes image files, not movies: set the output's file format to an image "
               "format (PNG, JPEG, TIFF or OpenEXR), then make the movie from the dreamed frames")


def output_problem(output) -> Optional[str]:
    """Why a render job's output (an :class:`~.output_settings.OutputSettings`) cannot be dreamed, or None."""
    return MOVIE_ERROR if output.is_movie else None


def saved_range(shot_range: tuple[int, int], loaded: Optional[tuple[int, int, int]],
                current: tuple[int, int, int]) -> tuple[int, int, int]:
    """The shot's frame range (start, end, step) as the .blend was saved:
    ``shot_range`` as the file keeps it (end before start: never saved with
    one), else ``loaded`` (the range when the file was loaded), else the
    scene's range now (``current``)."""
    start, end = shot_range
    if end >= start:
        return start, end, current[2]
    return loaded if loaded is not None else current


def plan_render_job(frame: int, *, end: int, step: int, saved: tuple[int, int, int], job_start: int, farm: bool,
                    write_from: Optional[int], seam_fade: int) -> ChunkPlan:
    """The plan of a render job whose first rendered frame is ``frame``:
    ``end`` and ``step`` are the scene's now, ``saved`` the shot's range,
    ``job_start`` the job's first frame (``-s A``); ``farm``: ``blender -b``
    with Overwrite on, where a job starting after the shot's start is a
    chunk (pre-rolled from ``write_from`` on, its first ``seam_fade`` frames
    held). Before it carries on from a chunk before (see
    :meth:`~.chunk_dreaming.ChunkDreaming.begin`)."""
    last = max(frame, end)
    shot = sorted(set(range(saved[0], saved[1] + 1, step)) | set(range(frame, last + 1, step)))
    chunk = farm and job_start > saved[0]
    first = write_from if write_from is not None else job_start if chunk else frame
    if not frame <= first <= last:
        raise UserError(f"{WRITE_FROM} {first} is outside the frames rendered ({frame}-{last})")
    preroll = sum(frame <= f < first for f in shot)
    plan = plan_chunk(shot, first, last, preroll=preroll, fade=seam_fade if chunk else 0)
    if plan.strands_a_seam:
        raise UserError(f"the Seam Fade ({seam_fade}) must be shorter than every chunk but the shot's last; this "
                        f"chunk is {len(plan.frames)} frame(s) ({plan.frames[0]}-{plan.frames[-1]}): lower the "
                        "Seam Fade or render longer chunks")
    return plan


def frame_role(plan: ChunkPlan, frame: int) -> str:
    """What a rendered frame of the chunk is for: ``warm`` (pre-roll, never
    written), ``held`` (kept aside for the seam with the chunk before) or ``write``."""
    return "warm" if frame in plan.warm else "held" if frame in plan.held else "write"


def plan_with_carry(plan: ChunkPlan) -> ChunkPlan:
    """The same chunk, carrying on from the one before: no pre-roll, no seam before it."""
    return plan_chunk(plan.shot, plan.frames[0], plan.frames[-1], carries_on=True)
