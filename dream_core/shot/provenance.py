"""What made each file: the provenance every front end decides from.
Standard library only (the add-on bundles it).

A dream of frame N is a function of its render, its settings and the state
the chain carried from frame N-1. So every dreamed frame gets a *link*: a
digest of the link before it (or ``START``), the frame number, the settings
the chain carries (everything but the output mix) and the digest of the
render's bytes. Two dreams with the same link are the same dream; a written
frame is current exactly when its link is the one the chain makes now. No
decision rests on whether a file exists.

Under a run's records folder (``.dream`` beside the CLI's output, in the
Dream output folder for the add-on):

- ``links/<link>.json``: what the link was made of, written once (the name is
  its content), so chunks on several machines never race on it; walking
  ``after`` back checks a chain carried from another chunk;
- ``files/<key>.json``: a written file's record: its link, the settings it
  was written with (mix, colour management, format), how it was made
  (``dream``, ``blend``, ``render``) and its size and time, so a file someone
  replaced is not taken for ours;
- ``states/<link>.state``: the exact carried state after that link (the
  server's bytes, see ``dream_core.frame.carried_state``), written atomically:
  a killed run carries on from it exactly instead of starting another chain.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from ..wire.protocol import ALGORITHM
from .atomic import write_atomically

START = "start"  # what the first frame of a chain carries on from
FOLDER = ".dream"
_BLOCK = 1 << 20


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def digest_of(value) -> str:
    """A stable digest of a JSON-able value (settings, a scene's state)."""
    return digest_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


WRITTEN_ONLY = ("mix", "dither")  # how a dream is written, not what the next frame carries


def chain_settings(params: dict) -> str:
    """The settings a chain carries: all but how each dream is written (the
    output mix, the dither of an 8-bit file): the next frame carries the full
    dream whatever they are, so a keyframed fade leaves the chain alone; and
    the algorithm that dreams them (``wire.protocol.ALGORITHM``: a release that dreams the same settings
    differently makes the frames dreamed before it not current)."""
    return digest_of({**{k: v for k, v in params.items() if k not in WRITTEN_ONLY}, "algorithm": ALGORITHM})


def link(after: str, frame: int, chain: str, input_digest: str) -> str:
    return digest_of([after, frame, chain, input_digest])


def file_stat(path: str) -> Optional[list[int]]:
    """[size, mtime in ns] of a file, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class Digests:
    """Digests of files' bytes, each file read once per process; ``known``
    (a digest recorded with the file's size and time) spares the reading
    when the file still has that size and time."""

    def __init__(self) -> None:
        self._cache: dict[tuple, str] = {}

    def of(self, path: str, known: Optional[tuple[list, str]] = None) -> Optional[str]:
        stat = file_stat(path)
        if stat is None:
            return None
        if known is not None and known[0] == stat:
            return known[1]
        key = (os.path.abspath(path), *stat)
        if key not in self._cache:
            sha = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(_BLOCK), b""):
                    sha.update(block)
            self._cache[key] = sha.hexdigest()[:32]
        return self._cache[key]


class MissingState(ValueError):
    """A kept state a run was planned with is gone (another run removed it)."""


@dataclass(frozen=True)
class Link:
    """What one link of a chain was made of."""

    frame: int
    chain: str  # chain_settings() of the frame
    input: str  # digest of the render's bytes
    after: str  # the link before, or START

    @property
    def id(self) -> str:
        return link(self.after, self.frame, self.chain, self.input)


@dataclass
class FileRecord:
    """A written file: what made it. ``link`` for dreams (and blends: the
    chain that carries on after them); ``settings``: a digest of everything
    else that shaped the file; ``input``: the source's [size, mtime] and
    digest when it was read; ``extra``: what a front end adds (a render's
    scene state, a blend's two chains)."""

    made: str
    settings: str
    link: Optional[str] = None
    frame: Optional[int] = None
    input: Optional[list] = None  # [[size, mtime_ns], digest] of the source
    output: Optional[list[int]] = None  # [size, mtime_ns] of the file as written
    extra: dict = field(default_factory=dict)


class Records:
    """The records folder of one output (``root`` is the ``.dream`` folder)."""

    def __init__(self, root: str) -> None:
        self.root = root

    @classmethod
    def beside(cls, folder: str) -> "Records":
        return cls(os.path.join(folder, FOLDER))

    # -- links
    def add_link(self, made: Link) -> str:
        path = os.path.join(self.root, "links", made.id + ".json")
        if not os.path.exists(path):  # the name is the content: an existing one is this one
            write_atomically(path, json.dumps(asdict(made)).encode())
        return made.id

    def link(self, link_id: str) -> Optional[Link]:
        try:
            with open(os.path.join(self.root, "links", link_id + ".json"), encoding="utf-8") as f:
                made = Link(**json.load(f))
        except (OSError, ValueError, TypeError):
            return None
        return made if made.id == link_id else None  # a record that does not hash to its name is not one

    def chain_is_current(self, link_id: str, current: Callable[[Link], bool],
                         known: Optional[dict[str, bool]] = None) -> bool:
        """Whether every link from ``link_id`` back to its chain's start is
        ``current`` (its render and settings are what they are now). A link
        whose record is missing is in doubt: not current. ``known``: answers
        kept between calls (a shot's chains share their beginnings)."""
        known = {} if known is None else known
        path = []
        while link_id != START and link_id not in known:
            made = self.link(link_id)
            path.append(link_id)
            if made is None or not current(made):
                known.update(dict.fromkeys(path, False))
                return False
            link_id = made.after
        answer = link_id == START or known[link_id]
        known.update(dict.fromkeys(path, answer))
        return answer

    # -- written files
    def key(self, path: str) -> str:
        """A file's record name: its path relative to the records' parent
        folder (the same on every machine that mounts the folder elsewhere)."""
        relative = os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(self.root)))
        return relative.replace(os.sep, "__").replace("/", "__")

    def file(self, path: str) -> Optional[FileRecord]:
        """The record of ``path`` when ``path`` is still the file it describes."""
        try:
            with open(os.path.join(self.root, "files", self.key(path) + ".json"), encoding="utf-8") as f:
                record = FileRecord(**json.load(f))
        except (OSError, ValueError, TypeError):
            return None
        return record if record.output is not None and record.output == file_stat(path) else None

    def write_file(self, path: str, record: FileRecord) -> None:
        """Records ``path``, just written (its size and time are taken now)."""
        record.output = file_stat(path)
        write_atomically(os.path.join(self.root, "files", self.key(path) + ".json"),
                         json.dumps(asdict(record)).encode())

    def forget_file(self, path: str) -> None:
        try:
            os.remove(os.path.join(self.root, "files", self.key(path) + ".json"))
        except FileNotFoundError:
            pass

    # -- carried states
    def state_path(self, link_id: str) -> str:
        return os.path.join(self.root, "states", link_id + ".state")

    def has_state(self, link_id: str) -> bool:
        return link_id != START and os.path.isfile(self.state_path(link_id))

    def read_state(self, link_id: str) -> Optional[bytes]:
        try:
            with open(self.state_path(link_id), "rb") as f:
                return f.read()
        except OSError:
            return None

    def start_state(self, link_id: str) -> Optional[bytes]:
        """The state a sequence brought to ``link_id`` starts from: None at a
        chain's START (afresh); an error when it is gone since it was planned."""
        if link_id == START:
            return None
        state = self.read_state(link_id)
        if state is None:
            raise MissingState(f"the carried state {link_id} is gone from {self.root}; run again")
        return state

    def keep_state(self, link_id: str, data: bytes) -> None:
        write_atomically(self.state_path(link_id), data)

    def drop_state(self, link_id: str) -> None:
        """Removes a carried state (they are large: a run keeps the last of
        its chain; only the run that wrote a state drops it)."""
        try:
            os.remove(self.state_path(link_id))
        except FileNotFoundError:
            pass
