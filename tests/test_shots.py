"""dream_core.shot: the shot planner and provenance records
(dream_core.shot.planner, dream_core.shot.provenance), atomic writes and
names in paths: tables of cases and properties, in milliseconds, no model.
The same farm table is checked against the Flamenco job type under node
(tests/test_farm.py)."""
import json
import os
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dream_core.shot.planner import Walk, farm_tasks, frame_list, plan_chunk, seam_share
from dream_core.shot.provenance import START, FileRecord, Link, MissingState, Records, chain_settings, file_stat

CASES = os.path.join(os.path.dirname(__file__), "cases", "farm_tasks.json")


@pytest.mark.parametrize("case", json.load(open(CASES))["cases"], ids=lambda c: f"{c['frames']}/{c['chunk_size']}")
def test_farm_tasks_follow_the_shared_table(case):
    tasks = farm_tasks(frame_list(case["frames"]), case["chunk_size"], case["preroll"])
    assert [list(t) for t in tasks] == case["tasks"]


def test_frame_lists_and_their_mistakes():
    assert frame_list("5,10-12, 3") == [3, 5, 10, 11, 12] and frame_list("-2-1") == [-2, -1, 0, 1]
    for bad in ("x", "4-2", "1-"):
        with pytest.raises(ValueError):
            frame_list(bad)


SHOT = tuple(range(1, 21))


@pytest.mark.parametrize("first, last, preroll, fade, carries_on, expected", [
    (1, 20, 5, 3, False, dict(frames=SHOT, warm=(), held=(), seam_before=None, seam_after=None)),  # the whole shot
    (1, 8, 5, 3, False, dict(frames=SHOT[:8], warm=(), held=(), seam_before=None, seam_after=9)),
    (9, 14, 5, 3, False, dict(frames=SHOT[8:14], warm=(4, 5, 6, 7, 8), held=(9, 10, 11), seam_before=9,
                              seam_after=15)),
    (9, 14, 5, 3, True, dict(frames=SHOT[8:14], warm=(), held=(), seam_before=None, seam_after=15)),  # carries on
    (3, 20, 5, 0, False, dict(frames=SHOT[2:], warm=(1, 2), held=(), seam_before=3, seam_after=None)),
    (19, 20, 0, 5, False, dict(frames=(19, 20), warm=(), held=(19, 20), seam_before=19, seam_after=None)),
])
def test_a_chunk_plan(first, last, preroll, fade, carries_on, expected):
    plan = plan_chunk(SHOT, first, last, preroll=preroll, fade=fade, carries_on=carries_on)
    assert {k: getattr(plan, k) for k in expected} == expected
    assert plan.order == plan.warm + plan.frames


def test_chunk_plans_refuse_what_is_not_a_chunk():
    for kwargs, words in ((dict(first=30, last=40), "has no frames 30-40"), (dict(preroll=-1), "0 or more")):
        with pytest.raises(ValueError, match=words):
            plan_chunk(SHOT, **kwargs)
    with pytest.raises(ValueError, match="increasing order"):
        plan_chunk((3, 2, 1))


def test_a_seams_ramp_goes_from_the_chunk_before_to_the_chunk_after():
    assert [seam_share(i, 3) for i in range(3)] == [0.25, 0.5, 0.75]


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(st.integers(-50, 300), min_size=1, max_size=60, unique=True),
       size=st.integers(1, 25), preroll=st.integers(0, 12))
def test_farm_tasks_write_every_frame_once_and_render_only_what_they_need(frames, size, preroll):
    tasks = farm_tasks(frames, size, preroll)
    written = [f for start, last, first in tasks for f in sorted(frames) if first <= f <= last]
    assert written == sorted(frames)
    for start, last, first in tasks:
        assert min(frames) <= start <= first <= last and first - start <= preroll
        assert len([f for f in frames if first <= f <= last]) <= size


# -- walking a chain

INPUTS = {f: f"render{f}" for f in SHOT}
CHAIN = "settings"


def walk_all(walk, frames, kept=lambda frame, walk: None):
    return [walk.visit(f, CHAIN, INPUTS[f], kept(f, walk)) for f in frames]


def test_a_fresh_walk_dreams_every_frame_in_one_sequence():
    steps = walk_all(Walk(), SHOT[:4])
    assert [s.action for s in steps] == ["dream"] * 4
    assert steps[0].restore == START and [s.restore for s in steps[1:]] == [None] * 3


def test_kept_frames_are_replayed_from_the_nearest_state_before_a_frame_to_dream():
    uninterrupted = Walk()
    links = [s.link for s in walk_all(uninterrupted, SHOT[:6])]
    states = {links[1]}  # a state kept after frame 2
    walk = Walk(lookup=uninterrupted.made.get, has_state=states.__contains__)  # the links' records
    steps = walk_all(walk, SHOT[:6], kept=lambda f, w: links[f - 1] if f <= 4 else None)
    assert [s.action for s in steps] == ["keep"] * 4 + ["dream"] * 2
    assert steps[4].restore == links[1] and [m.frame for m in steps[4].replay] == [3, 4]
    assert [s.link for s in steps] == links  # the same chain an uninterrupted walk makes
    walk.lost()  # the server restarted: the next frame replays from the state again
    step = walk.visit(7, CHAIN, INPUTS[7])
    assert step.restore == links[1] and [m.frame for m in step.replay] == [3, 4, 5, 6]


def test_a_changed_render_changes_its_link_and_every_link_after_it():
    before = [s.link for s in walk_all(Walk(), SHOT[:5])]
    INPUTS[3] = "rendered again"
    try:
        after = [s.link for s in walk_all(Walk(), SHOT[:5])]
    finally:
        INPUTS[3] = "render3"
    assert after[:2] == before[:2] and all(a != b for a, b in zip(after[2:], before[2:]))


def test_unwanted_frames_are_dreamed_only_when_a_later_frame_needs_them():
    walk = Walk()
    warm = [walk.visit(f, CHAIN, INPUTS[f], wanted=False) for f in (1, 2, 3)]
    assert [s.action for s in warm] == ["keep"] * 3
    step = walk.visit(4, CHAIN, INPUTS[4])
    assert step.restore == START and [m.frame for m in step.replay] == [1, 2, 3]


def test_a_frame_on_disk_continues_the_walk_only_when_it_carries_its_chain_on():
    first, second = Walk(), Walk()
    own = walk_all(first, SHOT[:3])
    other = walk_all(second, SHOT[1:3])  # a chunk that started its own chain at frame 2
    walk = Walk(lookup=lambda link_id: first.made.get(link_id) or second.made.get(link_id))
    walk.visit(1, CHAIN, INPUTS[1], own[0].link)
    assert walk.continues(own[1].link) and not walk.continues(other[0].link)
    assert walk.continues(other[0].link, before=own[1].link)  # a blend carries it on into the other chain


# -- records

def test_records_know_a_file_only_while_it_is_the_file_they_describe(tmp_path):
    records = Records.beside(str(tmp_path))
    target = tmp_path / "frame_0001.png"
    target.write_bytes(b"dream")
    records.write_file(str(target), FileRecord("dream", "s", "link", 1))
    assert records.file(str(target)).link == "link"
    os.utime(target, ns=(1, 1))  # replaced (or touched) by something else
    assert records.file(str(target)) is None
    assert records.file(str(tmp_path / "other.png")) is None


def test_link_records_are_checked_against_their_names(tmp_path):
    records = Records.beside(str(tmp_path))
    made = Link(1, chain_settings({"octaves": 2, "mix": 0.5}), "digest", START)
    assert records.add_link(made) == made.id and records.link(made.id) == made
    assert chain_settings({"octaves": 2, "mix": 0.5}) == chain_settings({"octaves": 2, "mix": 1.0})  # mix: not
    path = tmp_path / ".dream" / "links" / f"{made.id}.json"
    path.write_text(json.dumps(dict(frame=2, chain=made.chain, input="digest", after=START)))
    assert records.link(made.id) is None  # a record whose content is not its name is not one


def test_a_release_that_dreams_alike_settings_differently_makes_every_chain_new(monkeypatch):
    from dream_core.shot import provenance

    before = chain_settings({"octaves": 2, "temporal": "vectors"})
    monkeypatch.setattr(provenance, "ALGORITHM", provenance.ALGORITHM + 1)
    assert chain_settings({"octaves": 2, "temporal": "vectors"}) != before  # its links: none current, dreamed again


def test_a_chain_is_current_only_back_to_its_start(tmp_path):
    records = Records.beside(str(tmp_path))
    links, after = [], START
    for frame in (1, 2, 3):
        links.append(records.add_link(Link(frame, CHAIN, INPUTS[frame], after)))
        after = links[-1]
    assert records.chain_is_current(links[-1], lambda made: made.input == INPUTS[made.frame])
    assert not records.chain_is_current(links[-1], lambda made: made.frame != 1)  # its first render changed
    os.remove(tmp_path / ".dream" / "links" / f"{links[1]}.json")
    assert not records.chain_is_current(links[-1], lambda made: True)  # a link in doubt


def test_states_are_kept_and_dropped_atomically(tmp_path):
    records = Records.beside(str(tmp_path))
    assert not records.has_state(START) and records.read_state("x") is None
    records.keep_state("x", b"state")
    assert records.has_state("x") and records.read_state("x") == b"state" == records.start_state("x")
    assert records.start_state(START) is None
    records.drop_state("x")
    records.drop_state("x")
    assert not records.has_state("x")
    with pytest.raises(MissingState, match="is gone"):
        records.start_state("x")
    assert file_stat(str(tmp_path / "nothing")) is None


def test_atomic_writes_follow_the_umask(tmp_path):
    """Dreamed frames must be readable by other users and farm machines, as
    any file the user writes: mkstemp alone would leave them 0600."""
    from dream_core.shot.atomic import write_atomically

    old = os.umask(0o022)
    try:
        write_atomically(str(tmp_path / "shared.png"), b"frame")
        os.umask(0o027)
        write_atomically(str(tmp_path / "group.png"), b"frame")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.png").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "group.png").stat().st_mode & 0o777 == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file left


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    """A kill -9 mid-write leaves a hidden temporary; the next run in that
    folder removes it, but never one a writer beside it (a chunk running
    side by side, here or on another host sharing the folder) still writes."""
    import subprocess
    import time

    from dream_core.shot import atomic

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = atomic.owned_prefix().split("@")[1].rstrip(".")
    leftovers = {
        f".dream-{dead_pid}@{host}.frame_00001.exr": True,  # this host, writer gone
        f".dream-{dead_pid}@{host}.x1y2.partial": True,
        f".dream-{os.getppid()}@{host}.frame_00002.exr": False,  # this host, writer alive
        f".dream-{dead_pid}@another-host.frame_00003.exr": False,  # another host, fresh
        f".dream-{dead_pid}@old-host.frame_00004.exr": True,  # another host, a day old
        ".dream-notes.txt": False,  # not our pattern
        "frame_00005.png": False,
    }
    for name in leftovers:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".dream-{dead_pid}@{host}.render_ab12").mkdir()  # a render job's folder
    (tmp_path / f".dream-{dead_pid}@{host}.render_ab12" / "frame.exr").write_bytes(b"x")
    day_old = time.time() - atomic.FOREIGN_STALE_SECONDS - 60
    os.utime(tmp_path / f".dream-{dead_pid}@old-host.frame_00004.exr", (day_old, day_old))

    atomic.write_atomically(str(tmp_path / "frame_00006.png"), b"dream")
    left = set(os.listdir(tmp_path))
    assert left == {n for n, stale in leftovers.items() if not stale} | {"frame_00006.png"}
    (tmp_path / f".dream-{dead_pid}@{host}.late.partial").write_bytes(b"x")
    atomic.write_atomically(str(tmp_path / "frame_00007.png"), b"dream")  # once a folder, not on every write
    assert f".dream-{dead_pid}@{host}.late.partial" in os.listdir(tmp_path)
    assert atomic.remove_stale(str(tmp_path)) == [f".dream-{dead_pid}@{host}.late.partial"]


@given(st.text(max_size=300))
def test_a_name_in_a_path_is_one_safe_file_name_of_its_own(name):
    """Scene and strip names become file names: whatever the user typed
    (separators, ``..``, any script, 255 bytes in Blender 5), the result is
    one file-name part that stays in its folder, and no two names share it."""
    from dream_core.shot.frame_plans import NAME_BYTES, name_in_path

    part = name_in_path(name)
    assert part and os.sep not in part and "/" not in part and "\0" not in part
    assert not part.startswith(".") and not part.endswith(".")
    assert len(part.encode("utf-8", "surrogatepass")) <= NAME_BYTES + 9
    assert os.path.dirname(os.path.normpath(os.path.join("root", part))) == "root"
    if part == name:
        return
    for other in (part, part.rsplit("_", 1)[0], name[:-1], name + "x"):  # what it could be confused with
        assert other == name or name_in_path(other) != part


def test_names_in_paths_keep_what_is_safe_and_mark_what_is_not():
    from dream_core.shot.frame_plans import name_in_path

    assert [name_in_path(n) for n in ("Scene", "Scene.001", "ショット", "Shot-2_b")] == \
        ["Scene", "Scene.001", "ショット", "Shot-2_b"]
    assert name_in_path("a/b") != name_in_path("a_b") == "a_b"
    assert name_in_path("../../x").startswith("_._.._x_")
    assert name_in_path("x" * 300) != name_in_path("x" * 299)
