"""Opening a Hugging Face dataset with the ``datasets`` library, offline, wherever it is on this machine.

Three places hold a dataset: a ``save_to_disk`` folder (``dataset_dict.json`` or ``state.json``), local
data files (parquet, arrow, json/jsonl, csv, or a folder of images for ``imagefolder``), or the local
Hugging Face cache, named by its dataset id (``org/name``). Nothing here downloads: a dataset id is looked up
with ``local_files_only`` and ``datasets`` runs with its offline switch on. ``datasets`` is imported inside
the functions, so importing the source package stays cheap for processes that never read one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from fedray.errors import DataError

#: How to read ``data.root``; "auto" looks at what is there (see :func:`detect_format`).
Format = Literal["auto", "disk", "parquet", "arrow", "json", "csv", "imagefolder"]
#: File suffix → the ``datasets`` builder that reads it.
BUILDER_OF_SUFFIX: dict[str, str] = {".parquet": "parquet", ".arrow": "arrow", ".json": "json",
                                     ".jsonl": "json", ".csv": "csv"}
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif",
                                            ".tiff"})
_DATASET_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def open_dataset(root: Path | None, fmt: str, dataset_id: str | None = None,
                 config: str | None = None) -> dict[str, Any]:
    """Split name (as the dataset names it) → ``datasets.Dataset``, from ``root`` or the cache id."""
    if dataset_id is not None:
        return _as_splits(_load_cached(dataset_id, config))
    if root is None:
        raise DataError("data source 'hf' needs data.root (a save_to_disk folder or data files) or "
                        "data.dataset (a dataset id in the local Hugging Face cache)")
    found = detect_format(root) if fmt == "auto" else fmt
    with _offline():
        import datasets
        from datasets.exceptions import DatasetGenerationError

        if found == "disk":
            return _as_splits(datasets.load_from_disk(str(root)))
        if fmt == "auto" and (root / "README.md").is_file():
            # A hub download (--local-dir): its README's configs and data files are honoured.
            args: tuple[str, ...] = (str(root),)
            files: dict[str, Any] = {"name": config}
        else:
            args = (found,)
            files = {"data_dir": str(root)} if root.is_dir() else {"data_files": {"train": str(root)}}
        try:
            return _as_splits(datasets.load_dataset(*args, **files))
        except (ValueError, FileNotFoundError, DatasetGenerationError) as exc:
            raise DataError(f"datasets could not read {root} as {found}: {exc}; check data.format and that "
                            "the files are complete") from exc


def detect_format(root: Path) -> str:
    """"disk" for ``save_to_disk`` output, else the builder of the data files found (parquet first)."""
    if root.is_dir() and ((root / "dataset_dict.json").is_file() or (root / "state.json").is_file()):
        return "disk"
    files = [root] if root.is_file() else [p for p in _files_under(root, depth=4) if p.is_file()]
    suffixes = {p.suffix.lower() for p in files}
    for suffix, builder in BUILDER_OF_SUFFIX.items():
        if suffix in suffixes:
            return builder
    if suffixes & IMAGE_SUFFIXES:
        return "imagefolder"
    raise DataError(f"found no dataset at {root}: expected a save_to_disk folder (dataset_dict.json or "
                    f"state.json), or {', '.join(BUILDER_OF_SUFFIX)} files, or image files (imagefolder). "
                    "Point data.root at one, or set data.format")


def dataset_signature(root: Path | None) -> tuple[Any, ...]:
    """What changes when the files of ``root`` change: each file's path, size and mtime (sorted).

    Keys the in-process cache of loaded sources, so a replaced or re-extracted copy is read again.
    """
    if root is None:
        return ()
    files = [root] if root.is_file() else sorted(p for p in _files_under(root, depth=4) if p.is_file())
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def fingerprints(splits: dict[str, Any]) -> dict[str, str]:
    """The ``datasets`` fingerprint of each split (it changes with the data and its processing)."""
    return {name: str(getattr(ds, "_fingerprint", "")) for name, ds in splits.items()}


def _files_under(root: Path, depth: int) -> Iterator[Path]:
    for level in range(1, depth + 1):
        yield from root.glob("/".join(["*"] * level))


def _as_splits(loaded: Any) -> dict[str, Any]:
    import datasets

    if isinstance(loaded, datasets.Dataset):
        return {"train": loaded}
    return dict(loaded)


def _load_cached(dataset_id: str, config: str | None) -> Any:
    """A dataset id from the hub cache (``datasets--org--name`` snapshots) or from ``datasets``' cache."""
    if not _DATASET_ID.fullmatch(dataset_id):
        raise DataError(f"data.dataset={dataset_id!r} is not a Hugging Face dataset id (org/name)")
    snapshot = cached_dataset_snapshot(dataset_id)
    with _offline():
        import datasets

        try:
            if snapshot is not None:
                return datasets.load_dataset(snapshot, name=config)
            return datasets.load_dataset(dataset_id, name=config, download_mode="reuse_dataset_if_exists")
        except (ConnectionError, FileNotFoundError, ValueError) as exc:
            raise DataError(
                f"data.dataset={dataset_id!r} is not in the local Hugging Face cache "
                f"(HF_HUB_CACHE / HF_DATASETS_CACHE): {exc}. fedray never downloads; fetch it beforehand "
                f"(hf download {dataset_id} --repo-type dataset), or save it with save_to_disk and set "
                "data.root to that folder") from exc


def cached_dataset_snapshot(dataset_id: str) -> str | None:
    """The local snapshot folder of dataset repo ``dataset_id`` in the hub cache, or None."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(dataset_id, repo_type="dataset", local_files_only=True,
                                 cache_dir=constants.HF_HUB_CACHE)
    except (LocalEntryNotFoundError, HFValidationError):
        return None


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """``datasets`` with its offline switches on (read from its config module at call time)."""
    import datasets

    saved = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = saved
