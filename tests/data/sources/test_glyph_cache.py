"""The glyphs table's disk cache: exact round trip, keys that see every input, damage and failed writes
survived with a warning, and a cached run that never imports matplotlib (checked in fresh interpreters)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from fedray.data.schema import SAMPLE_SCHEMA
from fedray.data.sources import glyph_cache, read_source
from fedray.data.sources import glyphs as glyphs_module

ROOT = Path(__file__).resolve().parents[3]
SMALL = {"scripts": ["Greek", "Hebrew"], "max_per_class": 24, "samples_per_char": 2}
SMALL_ARGS = (32, 2, 24, ("Greek", "Hebrew"), 0)  # image_size, samples_per_char, max_per_class, ...


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty cache root of this test, and no table left in this process's memory."""
    monkeypatch.setenv("FEDRAY_CACHE", str(tmp_path))
    glyphs_module._build_table.cache_clear()
    yield tmp_path.joinpath(*glyph_cache.CACHE_SUBDIR)
    glyphs_module._build_table.cache_clear()


def load(**options) -> pa.Table:
    glyphs_module._build_table.cache_clear()  # in-process copy gone: read the disk (or render)
    return read_source("glyphs", {**SMALL, **options}).splits["train"]


def cached_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


def test_the_cached_table_equals_the_rendered_one_exactly(cache: Path, monkeypatch) -> None:
    rendered = glyphs_module._render_table(*SMALL_ARGS)
    first = load()
    assert len(cached_files(cache)) == 1 and cached_files(cache)[0].endswith(".arrow")

    def no_render(*args):
        raise AssertionError("a cached table was rendered again")

    monkeypatch.setattr(glyphs_module, "_render_table", no_render)
    again = load()
    for table in (first, again):
        assert table.schema.equals(SAMPLE_SCHEMA, check_metadata=True)
        assert table.schema.equals(rendered.schema, check_metadata=True)
        assert table.equals(rendered) and table.to_pylist() == rendered.to_pylist()


def test_the_font_directory_is_matplotlibs() -> None:
    import matplotlib

    assert glyphs_module.font_dir() == os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


def test_a_changed_parameter_uses_another_file(cache: Path) -> None:
    base = load()
    other_seed, other_size = load(seed=1), load(image_size=24)
    assert len(cached_files(cache)) == 3
    assert not other_seed.equals(base) and not other_size.equals(base)
    assert load().equals(base)


def test_the_key_sees_fonts_renderer_and_packages(tmp_path: Path, monkeypatch) -> None:
    fonts = []
    for path in glyphs_module.font_paths()[:2]:
        fonts.append(str(tmp_path / os.path.basename(path)))
        shutil.copy(path, fonts[-1])
    options = {"image_size": 32, "seed": 0, "scripts": ("Greek", "Hebrew")}
    key = glyph_cache.table_key(options, tuple(fonts))
    assert glyph_cache.table_key(options, tuple(fonts)) == key
    assert glyph_cache.table_key({**options, "seed": 1}, tuple(fonts)) != key
    assert glyph_cache.table_key({**options, "scripts": ("Greek", "Latin")}, tuple(fonts)) != key
    stat = os.stat(fonts[0])
    os.utime(fonts[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = glyph_cache.table_key(options, tuple(fonts))
    assert touched != key
    with open(fonts[1], "ab") as font:
        font.write(b"\0")
    assert glyph_cache.table_key(options, tuple(fonts)) != touched
    monkeypatch.setattr(glyph_cache, "RENDER_VERSION", glyph_cache.RENDER_VERSION + 1)
    assert glyph_cache.table_key(options, tuple(fonts)) != glyph_cache.table_key(options, tuple(fonts[:1]))
    bumped = glyph_cache.table_key(options, tuple(fonts))
    monkeypatch.setattr(glyph_cache, "RENDER_VERSION", glyph_cache.RENDER_VERSION - 1)
    assert glyph_cache.table_key(options, tuple(fonts)) != bumped
    monkeypatch.setattr(glyph_cache, "_version", lambda name: "0.0" if name == "matplotlib" else "1")
    assert glyph_cache.table_key(options, tuple(fonts)) != bumped


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong schema"])
def test_a_damaged_file_is_rendered_again_with_a_warning(cache: Path, tmp_path: Path, caplog,
                                                        damage: str) -> None:
    load()
    good = glyphs_module._render_table(*SMALL_ARGS)
    (name,) = cached_files(cache)
    path = cache / name
    # The damaged file replaces the good one under its name (a new inode): rewriting the mapped file in
    # place would pull the pages from under the table loaded above.
    broken = tmp_path / "broken.arrow"
    raw = path.read_bytes()
    if damage == "garbage":
        broken.write_bytes(b"not an arrow file" * 100)
    elif damage == "truncated":
        broken.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        broken.write_bytes(b"")
    else:
        with pa.ipc.new_file(str(broken), pa.schema([("id", pa.string())])) as writer:
            writer.write_table(pa.table({"id": ["x"]}))
    os.replace(broken, path)
    with caplog.at_level(logging.WARNING, logger="fedray.data.sources.glyph_cache"):
        again = load()
    assert again.equals(good)
    assert any("damaged" in r.getMessage() and name in r.getMessage() for r in caplog.records)
    assert glyph_cache._read(path).equals(good), "the file was rewritten whole"


def test_a_failed_write_leaves_no_file_and_renders_in_memory(cache: Path, caplog, monkeypatch) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with caplog.at_level(logging.WARNING, logger="fedray.data.sources.glyph_cache"):
        table = load()
    monkeypatch.undo()
    assert cached_files(cache) == [], "neither a temporary nor a partial file is left"
    assert any("could not store" in r.getMessage() for r in caplog.records)
    assert table.equals(glyphs_module._render_table(*SMALL_ARGS))


def test_a_rendering_error_is_not_swallowed(cache: Path, monkeypatch) -> None:
    from fedray.errors import DataError

    def broken(*args):
        raise DataError("broken renderer")

    monkeypatch.setattr(glyphs_module, "_render_table", broken)
    with pytest.raises(DataError, match="broken renderer"):
        load()


_LOAD = f"""
import json, sys
from fedray.data.sources import read_source
table = read_source("glyphs", {SMALL!r}).splits["train"]
print(json.dumps({{"rows": table.num_rows, "matplotlib": "matplotlib" in sys.modules}}))
"""


def test_a_second_run_imports_no_matplotlib(tmp_path: Path) -> None:
    env = {**os.environ, "FEDRAY_CACHE": str(tmp_path)}
    seen = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True, timeout=120,
                              cwd=ROOT, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        seen.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert seen[0] == {"rows": 48, "matplotlib": True}  # the first run renders
    assert seen[1] == {"rows": 48, "matplotlib": False}  # the second reads the cache
