"""The glyphs source's table on disk: rendered once, then memory-mapped by every later run.

Rendering 10,000 letters takes seconds and imports matplotlib (font files, character maps); a run that
finds the table already in ``$FEDRAY_CACHE/sources/glyphs/`` does neither. The file's name is a digest of
everything the table depends on (:func:`table_key`), so a file that exists is the right one; the key is
computed without importing matplotlib (its version from the package metadata, its font files located by
the import system and identified by size and modification time). Files are written atomically and shared
between processes by :mod:`fedray.cache_files`; a damaged one is rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import unicodedata
from pathlib import Path
from typing import Callable

import pyarrow as pa

from fedray.cache_files import CacheJob, cache_root, ensure_files, map_batch
from fedray.data.schema import SAMPLE_SCHEMA
from fedray.errors import FedRayError

logger = logging.getLogger(__name__)

#: Bump whenever the rendering or row-building code changes what the table holds: old files stop matching.
RENDER_VERSION = 1
#: Where under the cache root the tables live.
CACHE_SUBDIR = ("sources", "glyphs")
#: Packages whose version can change the pixels, the letters or the seeded choices.
_VERSIONED_PACKAGES = ("matplotlib", "pillow", "numpy")


def table_key(options: dict, font_files: tuple[str, ...]) -> str:
    """A digest of ``options`` (every table parameter), the renderer, the packages and the font files."""
    fonts = []
    for path in font_files:
        stat = os.stat(path)
        fonts.append([os.path.basename(path), stat.st_size, stat.st_mtime_ns])
    identity = {
        "options": options,
        "render_version": RENDER_VERSION,
        "packages": {name: _version(name) for name in _VERSIONED_PACKAGES},
        "unicode": unicodedata.unidata_version,
        "fonts": fonts,
    }
    text = json.dumps(identity, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def table_path(key: str) -> Path:
    """The cache file of the table with ``key`` (under ``$FEDRAY_CACHE``, else ``~/.cache/fedray``)."""
    return cache_root().joinpath(*CACHE_SUBDIR, f"{key}.arrow")


def cached_table(path: Path, render: Callable[[], pa.Table]) -> pa.Table:
    """The table stored at ``path``, memory-mapped; rendered and stored first if missing or damaged.

    The cache only saves time, so it never fails a run: a file that cannot be read is replaced (with a
    warning), and a cache directory that cannot be written is skipped (with a warning) and the table
    rendered in memory.
    """
    table = _read(path)
    if table is not None:
        return table
    rendered: list[pa.Table] = []
    rendering = [False]  # set while render() runs: its own errors are real and pass through

    def build() -> pa.RecordBatch:
        rendering[0] = True
        rendered.append(render())
        rendering[0] = False
        return _single_batch(rendered[-1])

    try:
        ensure_files([CacheJob(path, build)])
    except (OSError, FedRayError) as exc:
        if rendering[0]:
            raise
        logger.warning("could not store the glyphs table in the cache at %s (%s); rendering it in "
                       "memory for this run", path, exc)
    table = _read(path)
    if table is not None:
        return table
    return rendered[-1] if rendered else render()


def _read(path: Path) -> pa.Table | None:
    """The table at ``path``, or None when there is none; a damaged file is removed (and logged)."""
    if not path.exists():
        return None
    try:
        table = pa.Table.from_batches([map_batch(path)])
        if not table.schema.equals(SAMPLE_SCHEMA, check_metadata=True):
            raise ValueError(f"its schema differs from the sample schema: {table.schema}")
        table.validate(full=True)  # bad offsets or UTF-8 would otherwise surface far downstream
        return table
    except (OSError, ValueError, pa.ArrowException) as exc:
        logger.warning("the cached glyphs table %s is damaged (%s); rendering it again", path, exc)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as unlink_error:
            logger.warning("could not remove the damaged file %s (%s); delete it by hand", path,
                           unlink_error)
        return None


def _single_batch(table: pa.Table) -> pa.RecordBatch:
    """``table`` as one record batch (the cache file holds exactly one)."""
    batches = table.combine_chunks().to_batches()
    if len(batches) == 1:
        return batches[0]
    return pa.RecordBatch.from_pylist(table.to_pylist(), schema=table.schema)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
