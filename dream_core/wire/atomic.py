"""Atomic file writes. Standard library only: the add-on bundles this file
so both sides write frames the same way."""
from __future__ import annotations

import os
import tempfile


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path: str, data: bytes) -> None:
    """Writes a temporary file in the target's folder, then renames it: a
    crash never leaves a half-written file under the final name. The file
    gets the mode any new file would (0666 less the umask), not mkstemp's
    0600, so other users and farm machines can read the frames."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".partial", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # os.fchmod is missing on Windows before Python 3.13
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
