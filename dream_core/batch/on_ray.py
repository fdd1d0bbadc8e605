"""A shot's chunks on Ray (``dream --ray [ADDRESS]``, ``pip install
dream-renders[ray]``): one actor per GPU (``num_gpus=1``), or one per CPU
where there is no GPU, each keeping a model loaded across the chunks it
takes. Every actor runs the same chunk runner as ``dream --frames`` on the
shared output folder: finished frames are skipped (a second run resumes), a
chunk whose frame before is on disk carries on from it, the others warm up
with a pre-roll and cross-fade into the chunk before. A lost actor is
restarted and its chunk retried; Ctrl+C stops every actor.
"""
from __future__ import annotations

import os
from typing import Optional

from tqdm import tqdm

from ..config import DreamSettings
from ..wire.plans import FramePlan

RETRIES = 2  # a chunk whose actor died is tried again this many times (on a restarted actor)


def chunk_ranges(plans: list[FramePlan], size: int) -> list[tuple[int, int]]:
    """The sequence in chunks of ``size`` frames, as (first, last) frame numbers."""
    return [(plans[i].frame, plans[min(i + size, len(plans)) - 1].frame) for i in range(0, len(plans), size)]


class ChunkDreamer:
    """A Ray actor: a model kept loaded, dreaming whole chunks into the shared folder."""

    def __init__(self, params: dict, device: str) -> None:
        from .local import LocalBackend

        self.backend = LocalBackend(DreamSettings.from_params(params), device=device)

    def dream(self, plans: list[FramePlan], frames: tuple[int, int], preroll: int, fade: int) -> int:
        from .run import run_batch

        done, _ = run_batch(plans, self.backend, quiet=True, frames=frames, preroll=preroll, fade=fade)
        return done


def actor_count(resources: dict, wanted: Optional[int]) -> tuple[int, dict]:
    """How many actors, and what each asks Ray for: a GPU each, else a CPU each."""
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return (min(wanted, gpus) if wanted else gpus), {"num_gpus": 1}
    cpus = max(1, int(resources.get("CPU", 1)))
    return (min(wanted, cpus) if wanted else cpus), {"num_cpus": 1}


def dream_on_ray(plans: list[FramePlan], settings: DreamSettings, *, address: Optional[str], chunk_size: int,
                 preroll: int, fade: int, device: str = "auto", actors: Optional[int] = None,
                 quiet: bool = False) -> tuple[int, int]:
    """Dreams ``plans`` in chunks on Ray; returns (done, skipped)."""
    import ray

    ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True, configure_logging=False)
    try:
        count, resources = actor_count(ray.cluster_resources(), actors)
        remote = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES, **resources)(ChunkDreamer)
        pool = [remote.remote(settings.to_params(), "cuda" if "num_gpus" in resources else device)
                for _ in range(count)]
        return _run_chunks(ray, pool, plans, chunk_size, preroll, fade, quiet)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the actors (finished frames are kept; run again to resume)")
        raise
    finally:
        ray.shutdown()


def _run_chunks(ray, pool, plans, chunk_size: int, preroll: int, fade: int, quiet: bool) -> tuple[int, int]:
    """Hands chunks to idle actors in shot order; the bar counts frames as chunks finish."""
    skipped = sum(os.path.exists(p.target) for p in plans)
    pending = chunk_ranges(plans, chunk_size)
    running: dict = {}  # future -> (actor, chunk)
    done = 0
    with tqdm(total=len(plans), initial=skipped, unit="frame", desc="frames", disable=quiet) as bar:
        idle = list(pool)
        while pending or running:
            while idle and pending:
                actor, chunk = idle.pop(0), pending.pop(0)
                running[actor.dream.remote(plans, chunk, preroll, fade)] = (actor, chunk)
            ready, _ = ray.wait(list(running), num_returns=1)
            actor, _chunk = running.pop(ready[0])
            written = ray.get(ready[0])  # a chunk's error (a bad frame) ends the run here, with its message
            done += written
            bar.update(written)
            idle.append(actor)
    return done, skipped
