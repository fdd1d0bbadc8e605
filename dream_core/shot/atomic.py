"""Atomic file writes, and the temporaries they leave when a process is
killed. Standard library only: the add-on bundles this file so both sides
write frames the same way.

Every temporary we make beside a user's files is named
``.dream-<pid>@<host>.<anything>``: a later run tells its own dead
predecessors' leftovers (same host, that process gone) from a live writer's
(a chunk beside it, on this machine or another sharing the folder), and
removes only the former; another host's are removed once a day old.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import sys
import tempfile
import time

OWNED = re.compile(r"^\.dream-(\d+)@([A-Za-z0-9-]*)\.")
FOREIGN_STALE_SECONDS = 24 * 3600  # no write of one frame lasts a day: another host's leftover by then
_swept: set[str] = set()


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@functools.lru_cache(maxsize=1)  # asked for every temporary named and every leftover looked at
def _host() -> str:
    """This machine's name, and on Linux its process-ID namespace: containers
    sharing a host name (``--network host``) number their processes apart,
    so each must see the other's temporaries as another host's."""
    name = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:32]
    try:
        return f"{name}-{os.stat('/proc/self/ns/pid').st_ino:x}"
    except OSError:
        return name


def owned_prefix() -> str:
    """The start of the name of every temporary this process makes."""
    return f".dream-{os.getpid()}@{_host()}."


def temporary_beside(path: str) -> str:
    """A hidden name beside ``path`` for this process to write before
    renaming into place. The first time in a folder, the stale temporaries
    of killed processes are removed from it."""
    folder = os.path.dirname(os.path.abspath(path))
    sweep_once(folder)
    return os.path.join(folder, owned_prefix() + os.path.basename(path))


def write_atomically(path: str, data: bytes) -> None:
    """Writes a temporary file in the target's folder, then renames it: a
    crash never leaves a half-written file under the final name. The file
    gets the mode any new file would (0666 less the umask), not mkstemp's
    0600, so other users and farm machines can read the frames."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    sweep_once(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=owned_prefix(), suffix=".partial", dir=folder)
    except OSError as err:  # named as the file asked for, not our hidden temporary one
        raise OSError(err.errno, err.strerror, path) from None
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # os.fchmod is missing on Windows before Python 3.13
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise OSError(err.errno, err.strerror, path) from None
        raise


def check_writable(folder: str) -> None:
    """Makes ``folder`` if it is missing (as the first write would) and
    raises the OSError a new file there meets (read-only, not permitted,
    full, a file in the way), naming the folder: said before a dream of
    minutes, not at its write. Tried, not asked: ``os.access`` says yes to
    root wherever the kernel then refuses (/sys, /proc)."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=owned_prefix(), suffix=".probe", dir=folder)
    except OSError as err:
        raise OSError(err.errno, err.strerror, folder) from None
    os.close(fd)
    os.unlink(probe)


def sweep_once(folder: str) -> None:
    """:func:`remove_stale` the first time this process writes in ``folder``."""
    if folder not in _swept:
        _swept.add(folder)
        remove_stale(folder)


def remove_stale(folder: str, now: float | None = None) -> list[str]:
    """Removes our temporaries in ``folder`` whose writer is gone; returns their names."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = OWNED.match(entry.name)
        if match is None or not _is_stale(int(match.group(1)), match.group(2), entry, now):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass  # another user's, or just removed by a run beside us
    return removed


def _is_stale(pid: int, host: str, entry: os.DirEntry, now: float) -> bool:
    if host == _host() and sys.platform != "win32":  # os.kill(pid, 0) would end the process on Windows
        return pid != os.getpid() and not _alive(pid)
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > FOREIGN_STALE_SECONDS
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
