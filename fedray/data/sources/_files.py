"""Shared file readers for the dataset sources: records, images, Hugging Face layouts, shared options.

Every reader returns :class:`Record` objects that remember where they came from (file and 1-based line or
row), so a loader's error names the exact place to fix. Besides each dataset's own release, two Hugging
Face on-disk layouts are found here and their shards read with ``datasets`` (imported when one is read): a
hub parquet snapshot (``data/<split>-00000-of-00001.parquet``) and ``save_to_disk`` output
(``dataset_dict.json`` + ``<split>/data-*.arrow``). Image columns there are structs ``{bytes, path}``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from PIL import Image

from fedray.config.schema import spec
from fedray.data.schema import samples_to_table
from fedray.data.sources._rowchecks import check_field_types, refuse_duplicate_ids, refuse_single_class
from fedray.errors import DataError

#: Where a source reads its dataset from (see :func:`detect_layout`).
Layout = Literal["auto", "original", "parquet", "arrow"]
#: Most pixels an image may have (width × height), checked from its header before it is decoded: 50 MP
#: is above any dataset photo, and far below what a decompression bomb asks for.
MAX_IMAGE_PIXELS = 50_000_000
#: Hugging Face / release split names → fedray split names.
SPLIT_NAMES: Mapping[str, str] = {"train": "train", "validation": "validation", "val": "validation",
                                  "dev": "validation", "test": "test"}


@dataclass(frozen=True)
class Record:
    """One row of a dataset file and where it is (``"<file> line 3"``), for errors that point at it."""

    data: Mapping[str, Any]
    where: str

    def require(self, name: str) -> Any:
        """The value of field ``name``; a :class:`DataError` naming file, row and field if absent or null."""
        value = self.data.get(name)
        if value is None:
            raise DataError(f"{self.where} has no field {name!r} (or it is null); fields present: "
                            f"{sorted(self.data)}. Fix or drop that row, or point data.root at the "
                            "dataset's original files")
        return value

    def get(self, name: str, default: Any = None) -> Any:
        """The value of field ``name``, or ``default`` when it is absent or null."""
        value = self.data.get(name)
        return default if value is None else value

    def text(self, name: str) -> str | None:
        """Text field ``name`` (None when absent or null); a :class:`DataError` naming file, row and field
        when it holds anything but text (a number is taken as its text)."""
        value = self.data.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise DataError(f"{self.where}: field {name!r} holds a {type(value).__name__} ({str(value)[:60]}), "
                        "expected text. Fix or drop that row")


def max_image_side_option() -> Any:
    """The ``max_image_side`` parameter the image sources share."""
    return spec(448, ge=1, help="images longer than this many pixels are downscaled (null: never)")


def layout_option() -> Any:
    """The ``layout`` parameter of the sources that also read Hugging Face copies."""
    return spec("auto", help="original (the release's files), parquet (a hub snapshot), arrow "
                             "(save_to_disk) or auto (whichever is there)")


def require_file(path: Path, fix: str) -> Path:
    """``path`` if it is a file, else a :class:`DataError` naming it and saying ``fix``."""
    if not path.is_file():
        raise DataError(f"{path} not found; {fix}")
    return path


def find_base(root: Path, marker: str, subdirs: Sequence[str] = ()) -> Path:
    """The first of ``root`` and ``root/<subdir>`` that holds ``marker``; ``root`` if none does."""
    for base in (root, *(root / sub for sub in subdirs)):
        if (base / marker).exists():
            return base
    return root


def read_bytes(path: Path) -> bytes:
    """The bytes of dataset file ``path``; a :class:`DataError` naming it if it is not a readable file."""
    try:
        if path.is_dir():
            raise DataError(f"{path} is a directory, expected a file; point data.root at the dataset's "
                            "original layout")
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}; check that it exists and is readable") \
            from None


def read_text_lines(path: Path) -> list[str]:
    """The lines of text file ``path`` (UTF-8, a byte-order mark dropped, line ends kept off), with a
    :class:`DataError` naming the file and line of any byte that is not UTF-8."""
    lines = []
    for n, raw in enumerate(read_bytes(path).splitlines(), start=1):
        try:
            lines.append(raw.decode("utf-8-sig" if n == 1 else "utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} line {n} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                            f"{exc.start + 1}); the file may be corrupt or binary. Fix or delete that line, "
                            "or re-extract the file") from None
    return lines


def read_json(path: Path) -> Any:
    """Parse a JSON file, with an error naming the file, line and column of a syntax error."""
    text = "\n".join(read_text_lines(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                        "the file may be truncated, re-extract it from the dataset release") from None
    except RecursionError:
        raise DataError(f"{path} is nested too deeply to read as JSON; re-extract it") from None


def read_json_records(path: Path) -> list[Record]:
    """A JSON file holding a list of objects, as records numbered from 1."""
    items = read_json(path)
    if not isinstance(items, list):
        raise DataError(f"{path} holds a JSON {type(items).__name__}, expected a list of objects")
    return [_object(item, f"{path} record {i}") for i, item in enumerate(items, start=1)]


def read_jsonl(path: Path) -> list[Record]:
    """A JSON-lines file (one object per line; blank lines skipped), records named by line number."""
    records = []
    for n, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise DataError(f"{path} line {n} is not valid JSON ({reason}); expected one JSON "
                            "object per line. Fix or delete that line") from None
        records.append(_object(item, f"{path} line {n}"))
    return records


def read_tsv(path: Path) -> list[Record]:
    """A tab-separated file with a header row; fields are taken verbatim (no quote processing)."""
    lines = read_text_lines(path)
    if not lines:
        raise DataError(f"{path} is empty; expected a tab-separated header row and data rows")
    header = lines[0].split("\t")
    records = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != len(header):
            raise DataError(f"{path} line {n} has {len(values)} tab-separated fields, expected "
                            f"{len(header)} ({', '.join(header)}). Fix that line")
        records.append(Record(dict(zip(header, values)), f"{path} line {n}"))
    return records


def _object(item: Any, where: str) -> Record:
    if not isinstance(item, dict):
        raise DataError(f"{where} is a JSON {type(item).__name__}, expected an object")
    return Record(item, where)


def read_records(paths: Sequence[Path]) -> list[Record]:
    """The records of one split stored in ``paths`` (.json, .jsonl, .tsv, .parquet or .arrow shards); a
    split file without rows is an error, so an empty test file is never silently replaced by a share
    carved from train."""
    readers = {".json": read_json_records, ".jsonl": read_jsonl, ".tsv": read_tsv,
               ".parquet": _read_table, ".arrow": _read_table}
    records: list[Record] = []
    for path in paths:
        if path.suffix not in readers:
            raise DataError(f"cannot read {path}: expected one of {', '.join(readers)}")
        records += readers[path.suffix](path)
    if paths and not records:
        raise DataError(f"{', '.join(map(str, paths))} holds no rows; fill it, or remove it so that the "
                        "split is carved from train instead (data.test_fraction, data.validation_fraction)")
    return records


class ImageReader:
    """Reads images into encoded bytes, downscaled to ``max_side`` pixels (longest side) when larger.

    Images no larger than ``max_side`` keep their original bytes. Files are cached by path, since many
    samples of a VQA dataset share one image. With ``root`` (the scenario's data.root), an image path
    that leads outside it (``../../etc/x``, an absolute path elsewhere) is refused: a dataset names its
    own files. Symbolic links inside the root are followed, so images may live on another disk.
    """

    def __init__(self, max_side: int | None, root: str | Path | None = None) -> None:
        self.max_side = max_side
        self.root = None if root is None else Path(os.path.abspath(root))
        self._cache: dict[Path, bytes] = {}

    def file(self, path: Path, where: str) -> bytes:
        """The bytes of image file ``path`` (``where`` names the row that refers to it)."""
        if path not in self._cache:
            self._refuse_outside_root(path, where)
            if not path.is_file():
                raise DataError(f"{where}: image {path} not found; extract the dataset's images under "
                                "data.root as they are laid out in the release")
            self._cache[path] = fit_image(read_bytes(path), self.max_side, f"{where} ({path})")
        return self._cache[path]

    def _refuse_outside_root(self, path: Path, where: str) -> None:
        if self.root is None:
            return
        normal = Path(os.path.normpath(os.path.abspath(path)))  # lexical: ".." resolved, links kept
        if normal != self.root and self.root not in normal.parents:
            raise DataError(f"{where}: image path {str(path)!r} leads outside data.root ({self.root}); a "
                            "dataset's rows must name files inside it. Fix that row")

    def cell(self, value: Any, base: Path, where: str) -> bytes | None:
        """An image cell: a ``{bytes, path}`` struct, raw bytes, a path relative to ``base``, or null."""
        if isinstance(value, dict):
            if value.get("bytes"):
                return fit_image(value["bytes"], self.max_side, where)
            value = value.get("path")
        if isinstance(value, bytes):
            return fit_image(value, self.max_side, where)
        if isinstance(value, str) and value:
            return self.file(base / value, where)  # an absolute value stays itself; file() checks the root
        if value not in (None, ""):
            raise DataError(f"{where}: the image field holds a {type(value).__name__}, expected a file path, "
                            "image bytes or a {bytes, path} struct. Fix that row")
        return None


def fit_image(data: bytes, max_side: int | None, where: str) -> bytes:
    """``data`` unchanged if its longest side is at most ``max_side``; else resized and re-encoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"{where}: image is {width}×{height} pixels, over the {MAX_IMAGE_PIXELS:,}-"
                                "pixel limit (a decompression bomb, or a scan far larger than a model "
                                "uses); downscale it or drop that row")
            if max_side is None or max(width, height) <= max_side:
                return data
            scale = max_side / max(width, height)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            fmt = "JPEG" if img.format == "JPEG" else "PNG"
            small = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{where}: image refused as a decompression bomb ({exc}); drop that row") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{where}: cannot read image ({len(data)} bytes): {exc}; the file may be "
                        "truncated or not an image, re-extract it") from exc
    buf = io.BytesIO()
    small.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def detect_layout(root: Path, markers: Sequence[str], layout: str, source: str) -> str:
    """``layout`` unless "auto": then "original" if a marker file exists, else "parquet", else "arrow"."""
    if layout != "auto":
        return layout
    if any((root / marker).exists() for marker in markers):
        return "original"
    if _parquet_files(root):
        return "parquet"
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        return "arrow"
    raise DataError(f"data source {source!r} found no dataset under {root}: looked for "
                    f"{', '.join(markers)} (the original release), *.parquet files up to two folders deep "
                    "(a Hugging Face hub snapshot) and dataset_dict.json or state.json (datasets "
                    "save_to_disk output). Point data.root at the folder holding one of them")


def hf_split_files(root: Path, layout: str) -> dict[str, list[Path]]:
    """Split name (as the copy names it) → its shard files, for the "parquet" or "arrow" layout."""
    return _parquet_splits(root) if layout == "parquet" else _arrow_splits(root)


def hf_records(root: Path, layout: str) -> dict[str, list[Record]]:
    """The records of a Hugging Face copy by fedray split (train/validation/test); other splits dropped."""
    files = standard_splits(hf_split_files(root, layout))
    return {split: read_records(paths) for split, paths in files.items()}


def standard_splits(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Rename ``train``/``validation``|``val``|``dev``/``test`` keys to fedray splits; drop the others."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        split = SPLIT_NAMES.get(name)
        if split is None:
            continue
        if split in out:
            raise DataError(f"splits {sorted(k for k in raw if SPLIT_NAMES.get(k) == split)} all map to "
                            f"fedray's {split!r} split; keep only one of them")
        out[split] = value
    return out


def _parquet_files(root: Path) -> list[Path]:
    return sorted({*root.glob("*.parquet"), *root.glob("*/*.parquet"), *root.glob("*/*/*.parquet")})


def _parquet_splits(root: Path) -> dict[str, list[Path]]:
    """Group ``<split>-0000x-of-0000N.parquet`` (or ``<split>/0000.parquet``) files by split name."""
    found: dict[str, dict[Path, list[Path]]] = {}
    for path in _parquet_files(root):
        numbered = path.stem.isdigit()  # refs/convert/parquet style: <config>/<split>/0000.parquet
        split = path.parent.name if numbered else path.stem.split("-")[0]
        config_dir = path.parent.parent if numbered else path.parent
        found.setdefault(split, {}).setdefault(config_dir, []).append(path)
    if not found:
        raise DataError(f"no *.parquet files under {root}; expected a Hugging Face hub snapshot such as "
                        "data/train-00000-of-00001.parquet")
    for split, dirs in found.items():
        if len(dirs) > 1:
            raise DataError(f"split {split!r} has parquet files in several folders "
                            f"({sorted(map(str, dirs))}), probably several configs of one dataset; "
                            "point data.root at one of them")
    return {split: next(iter(dirs.values())) for split, dirs in found.items()}


def _arrow_splits(root: Path) -> dict[str, list[Path]]:
    """Split → ``.arrow`` shards of ``save_to_disk`` output (a DatasetDict, or one Dataset as "train")."""
    if (root / "dataset_dict.json").is_file():
        names = _json_field(root / "dataset_dict.json", "splits")
        if not isinstance(names, list) or not names:
            raise DataError(f"{root / 'dataset_dict.json'} lists no splits; expected "
                            '{"splits": ["train", ...]} as written by datasets save_to_disk')
        return {str(name): _arrow_shards(root / str(name)) for name in names}
    if (root / "state.json").is_file():
        return {"train": _arrow_shards(root)}
    raise DataError(f"neither dataset_dict.json nor state.json under {root}; expected the folder written "
                    "by datasets save_to_disk")


def _arrow_shards(folder: Path) -> list[Path]:
    state = folder / "state.json"
    files = _json_field(state, "_data_files") if state.is_file() else None
    paths = ([folder / str(f.get("filename")) for f in files if isinstance(f, dict)] if files
             else sorted(folder.glob("data-*.arrow")) or sorted(folder.glob("*.arrow")))
    if not paths or not all(p.is_file() for p in paths):
        raise DataError(f"no readable .arrow shards in {folder} (looked for {[str(p) for p in paths]} or "
                        "data-*.arrow); copy the whole save_to_disk folder")
    return paths


def _json_field(path: Path, name: str) -> Any:
    data = read_json(path)
    return data.get(name) if isinstance(data, dict) else None


def _read_table(path: Path) -> list[Record]:
    """Rows of a parquet shard or an Arrow shard, read with ``datasets``, each named ``"<file> row <n>"``.

    Parquet goes through ``Dataset.from_parquet`` (converted once into the ``datasets`` cache), Arrow
    streams (what ``save_to_disk`` writes) are memory-mapped by ``Dataset.from_file``; an Arrow IPC *file*
    (not a stream), which ``datasets`` does not read, is opened with pyarrow. Images stay the stored
    ``{bytes, path}`` structs (the arrow format never decodes them).
    """
    from datasets.exceptions import DatasetGenerationError

    try:
        rows = _dataset_of(path).with_format("arrow")[:].to_pylist()
    except (pa.ArrowException, OSError, ValueError, DatasetGenerationError) as exc:
        raise DataError(f"cannot read {path} as {path.suffix[1:]}: {exc}; the file may be truncated, "
                        "copy it again") from exc
    return [Record(row, f"{path} row {i}") for i, row in enumerate(rows, start=1)]


def _dataset_of(path: Path) -> Any:
    import datasets

    if path.suffix == ".parquet":
        return datasets.Dataset.from_parquet(str(path))
    try:
        return datasets.Dataset.from_file(str(path))
    except pa.ArrowInvalid:
        with pa.OSFile(str(path)) as src:  # read into memory, so the table outlives the file handle
            return datasets.Dataset(pa.ipc.open_file(src).read_all())


def build_tables(rows: Mapping[str, list[dict[str, Any]]], source: str) -> dict[str, pa.Table]:
    """Sample tables by split, after the checks that catch a broken dataset: sample ids are unique across
    splits, text fields hold text, and a labelled train split holds more than one class. ``train`` must
    have rows; a split the source's filters left empty is left out (an empty split *file* is refused
    when it is read, by :func:`read_records`)."""
    if not rows.get("train"):
        raise DataError(f"data source {source!r} found no training samples; check data.root and the "
                        "source's options (filters such as english_only or require_image)")
    for split, split_rows in rows.items():
        check_field_types(split_rows, split, source)
    refuse_duplicate_ids(rows, source)
    refuse_single_class(rows["train"], source)
    return {split: samples_to_table(split_rows) for split, split_rows in rows.items() if split_rows}
