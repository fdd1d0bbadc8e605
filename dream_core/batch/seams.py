"""Cross-fades at chunk seams. Two chunks of a shot dreamed on different
machines grow different patterns (a carried dream remembers where its chain
began), so the first frame of a chunk jumps from the last of the chunk before
even after a pre-roll (measured: 2.6x the flicker inside chunks with a 10
frame pre-roll, 1.08x with a 5 frame cross-fade; benchmarks/chunks.py).

The chunk after a seam keeps the last ``fade`` frames of its pre-roll; the
chunk before keeps its own last ``fade`` frames; whichever finishes second
lays each such frame over as a ramp from the chunk before (far from the
seam) to the chunk after (at the seam). Both copies stay in ``OUTPUT/.seams``,
so the blend comes out the same whatever order the chunks end in.
"""
from __future__ import annotations

import os

from ..io import Picture, read_image, write_image
from ..wire.plans import FramePlan, fade_weight, seam_folder, seams_touching

FOLDER = ".seams"


class Seams:
    """The copies kept for cross-fades in one output folder."""

    def __init__(self, out_dir: str, fade: int) -> None:
        self.root = os.path.join(out_dir, FOLDER)
        self.fade = fade

    def keep_own(self, plan: FramePlan, picture: Picture) -> None:
        write_image(os.path.join(self.root, "own", os.path.basename(plan.target)), picture)

    def keep_preroll(self, plan: FramePlan, picture: Picture, seam: int) -> None:
        write_image(os.path.join(self.root, seam_folder(seam, self.fade), os.path.basename(plan.target)), picture)

    def merge(self, plans: list[FramePlan], touched: tuple[int, int]) -> int:
        """Writes every frame of the seams beside ``touched`` (the first and
        last frame a chunk wrote or kept) whose two copies are here; returns
        how many. A long shot's end does not rewrite its start."""
        by_name = {os.path.basename(p.target): p for p in plans}
        merged = 0
        for folder, seam, fade in seams_touching(self.root, touched):
            for name in sorted(os.listdir(folder)):
                own = os.path.join(self.root, "own", name)
                if name in by_name and os.path.exists(own):
                    before, after = read_image(own), read_image(os.path.join(folder, name))
                    w = fade_weight(seam - by_name[name].frame, fade)
                    write_image(by_name[name].target, before.with_pixels(before.pixels + w * (after.pixels
                                                                                               - before.pixels)))
                    merged += 1
        return merged
