"""Writing run-directory files so that a failure never leaves half a file or a stray temporary one.

Every file a run replaces (checkpoint, adapters, summary, a trimmed history, spilled client states) is
written to ``<name>.tmp`` and renamed over the old one: a reader sees the old file or the new one, never
a mix. When the write fails (a full disk, a directory made read-only) the temporary file is removed and
the error becomes a :class:`RunDirWriteError` that names the file and the cause, so the run can stop with
a message instead of a traceback.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

from fedray.errors import FedRayError

_CAUSES = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EACCES: "permission denied", errno.EPERM: "permission denied",
           errno.EROFS: "the file system is read-only"}


class RunDirWriteError(FedRayError):
    """A file of the run directory could not be written (full disk, missing permission, ...)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"could not write {path}: {reason}")

    def __reduce__(self):  # raised in the aggregator actor, re-raised by the driver: keep both fields
        return (RunDirWriteError, (self.path, self.reason))


def describe_os_error(exc: OSError) -> str:
    """A short, plain cause for an OSError (``the disk is full``, ``permission denied``, ...)."""
    return _CAUSES.get(exc.errno, exc.strerror or str(exc))


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to write ``path``'s new content, then rename it over ``path``.

    On any failure the temporary file is gone and ``path`` is as it was; an OSError is raised as a
    :class:`RunDirWriteError`.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise RunDirWriteError(path, describe_os_error(exc)) from exc
        raise
    return path
