"""Cache files that several processes build together: each is written once, atomically, and then mapped.

A file is named by a key of everything its content depends on, so a file that exists is right, and
nothing ever rewrites one. Several actors (or runs) may need the same files at once; each file is built by
whichever process takes its lock first (``flock``, released by the OS if that process dies), while the
others build the next free ones or wait. A file appears under its final name only complete: it is written
under a temporary name and renamed (atomic on one file system), so a reader never sees half of one.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pyarrow as pa

from fedray.errors import DataError

#: Where caches go when the scenario names no directory: ``$FEDRAY_CACHE``, else ``~/.cache/fedray``.
CACHE_ENV = "FEDRAY_CACHE"


def cache_root(configured: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``configured``, else ``$FEDRAY_CACHE``, else ``~/.cache/fedray``."""
    chosen = configured or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fedray"
    return Path(chosen).expanduser()


@dataclass(frozen=True)
class CacheJob:
    """One file to make: where it goes and how to build its single record batch."""

    path: Path
    build: Callable[[], pa.RecordBatch]


def ensure_files(jobs: Sequence[CacheJob]) -> None:
    """Make every job's file exist, sharing the work with any other process doing the same.

    Passes over the missing files build each one whose lock is free; when the only files left are being
    built elsewhere, wait for one of those locks, then look again (its holder may have died before
    writing it, and then this process builds it).
    """
    pending = [job for job in jobs if not job.path.exists()]
    for job in pending:
        _make_dir(job.path.parent)
    while pending:
        built_any = False
        for job in pending:
            with _locked(job.path, wait=False) as held:
                if held and not job.path.exists():
                    write_batch(job.path, job.build())
                built_any = built_any or held
        pending = [job for job in pending if not job.path.exists()]
        if pending and not built_any:
            with _locked(pending[0].path, wait=True):
                pass


def write_batch(path: Path, batch: pa.RecordBatch) -> None:
    """Write ``batch`` as an Arrow IPC file at ``path``: to a temporary name first, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as sink:
            with pa.ipc.new_file(sink, batch.schema) as writer:
                writer.write_batch(batch)
            sink.flush()
            os.fsync(sink.fileno())  # on disk before it has its name: a crash leaves no empty file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def map_batch(path: Path) -> pa.RecordBatch:
    """The record batch of the file at ``path``, memory-mapped: its buffers are the file's pages."""
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).get_batch(0)


@contextmanager
def _locked(path: Path, wait: bool) -> Iterator[bool]:
    """Hold the lock of ``path`` for the block; yields whether it is held (``wait=False`` may fail)."""
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _make_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache directory {str(directory)!r} ({exc}); set data.cache_dir "
                        f"or ${CACHE_ENV} to a writable directory") from exc
