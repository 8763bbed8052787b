"""Data sources: registered loaders that turn a dataset into tables of samples.

A source is a function ``(params) -> SourceData`` registered with its frozen parameter dataclass (the
``data`` section's inline keys, e.g. ``data: {source: glyphs, image_size: 32}``); its tables follow the
:data:`~fedray.data.schema.SAMPLE_SCHEMA`. A source returns the splits its dataset ships (``train``, and
``validation`` / ``test`` where they exist); :func:`load_source` draws whatever split is missing from the
training rows with one seeded, stratified procedure, and applies the size caps, so every source is split
the same way. A source whose parameter class says ``reads_files`` is called as ``(params, root)`` with
``data.root``, which must then be set and exist.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from fedray.config.params import params_or_raise
from fedray.config.schema import DataConfig, SourceConfig
from fedray.data.schema import validate_table
from fedray.data.sources.base import DATA_SOURCES, SPLITS, SourceData, SourceFn, needs_root, reads_files
from fedray.errors import DataError
from fedray.registry import import_submodules
from fedray.seeding import derive_rng, derive_seed


@dataclass(frozen=True)
class DatasetSplits:
    """The train, validation and held-out test samples of one source, with the answer word of each label."""

    train: pa.Table
    validation: pa.Table
    test: pa.Table
    label_names: tuple[str, ...]
    task: str


def load_source(name: str, root: str | None, options: Mapping[str, Any], seed: int, *,
                test_fraction: float, validation_fraction: float = 0.0,
                max_train_samples: int | None = None, max_validation_samples: int | None = None,
                max_test_samples: int | None = None, path: str = "data") -> DatasetSplits:
    """Load source ``name`` and return all three splits, drawing missing ones from ``train``.

    A missing test split takes ``test_fraction`` of the training rows, then a missing validation split
    takes ``validation_fraction`` of the original training rows from what is left; both stratified by label.
    ``path`` is where the source sits in the scenario, for errors about its options.
    """
    data = read_source(name, options, root, path)
    if not isinstance(data, SourceData) or "train" not in data.splits:
        raise DataError(f"data source {name!r} must return SourceData with a 'train' split")
    unknown = sorted(set(data.splits) - set(SPLITS))
    if unknown:
        raise DataError(f"data source {name!r} returned unknown split(s) {unknown}; known: {list(SPLITS)}")
    for table in data.splits.values():
        validate_table(table)
    tables = dict(data.splits)
    n_train = tables["train"].num_rows
    for split, fraction in (("test", test_fraction), ("validation", validation_fraction)):
        if split not in tables:
            share = fraction * n_train / max(tables["train"].num_rows, 1)
            rng = derive_rng(seed, f"{split}_split")
            tables["train"], tables[split] = _carve(tables["train"], share, rng, name)
    caps = {"train": max_train_samples, "validation": max_validation_samples, "test": max_test_samples}
    for split, cap in caps.items():
        tables[split] = _cap(tables[split], cap, derive_rng(seed, "cap", split))
    return DatasetSplits(train=tables["train"], validation=tables["validation"], test=tables["test"],
                         label_names=tuple(data.label_names), task=str(data.task))


def read_source(name: str, options: Mapping[str, Any] | None = None, root: str | None = None,
                path: str = "data") -> SourceData:
    """The splits source ``name`` ships, its ``options`` built into its parameter class.

    A bad option raises one ConfigError naming each problem under ``path`` (``data.image_size: ...``);
    a source that reads files gets ``root``, which must be set and exist.
    """
    fn = DATA_SOURCES.get(name)
    options = dict(options or {})
    if "root" in options:
        raise DataError(f"data.options.root is not an option; set data.root for source {name!r}")
    params = params_or_raise(DATA_SOURCES.params_class(name), options, path)
    if not reads_files(name):
        return fn(params)
    return fn(params, _existing_root(name, root) if root is not None or needs_root(name, options) else None)


def _existing_root(name: str, root: str | None) -> str:
    if root is None:
        raise DataError(f"data source {name!r} reads files; set data.root to its directory")
    root = os.path.expanduser(root)
    if not os.path.exists(root):
        raise DataError(f"data.root {root!r} does not exist (data source {name!r}); "
                        "point data.root at the dataset directory")
    return root


def load_primary(cfg: DataConfig, seed: int) -> DatasetSplits:
    """The scenario's main source (``data.source``) with its split and cap settings."""
    return load_source(cfg.source, cfg.root, cfg.options, seed, test_fraction=cfg.test_fraction,
                       validation_fraction=cfg.validation_fraction,
                       max_train_samples=cfg.max_train_samples,
                       max_validation_samples=cfg.max_validation_samples,
                       max_test_samples=cfg.max_test_samples)


def load_further(cfg: SourceConfig, data: DataConfig, seed: int) -> DatasetSplits:
    """A secondary or evaluation-only source, split like the main one, with its own caps."""
    path = "data.secondary" if cfg is data.secondary else "data.eval_sources"
    return load_source(cfg.source, cfg.root, cfg.options, derive_seed(seed, "source", cfg.source),
                       test_fraction=data.test_fraction, validation_fraction=data.validation_fraction,
                       max_train_samples=cfg.max_train_samples, max_test_samples=cfg.max_test_samples,
                       path=path)


def _carve(table: pa.Table, fraction: float, rng: np.random.Generator,
           source: str) -> tuple[pa.Table, pa.Table]:
    """Split ``table`` into (rest, carved) with ``fraction`` of the rows carved out, stratified by label."""
    if fraction <= 0.0:
        return table, table.slice(0, 0)
    rest, carved = _stratified_split(_labels_of(table), min(fraction, 0.999), rng, source)
    return table.take(pa.array(rest)), table.take(pa.array(carved))


def _labels_of(table: pa.Table) -> np.ndarray:
    # Rows without a label form their own stratum (-1) so generative tasks can still be split.
    return table.column("label").fill_null(-1).to_numpy().astype(np.int64)


def _stratified_split(labels: np.ndarray, test_fraction: float, rng: np.random.Generator,
                      source: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) row indices with each label's test share close to ``test_fraction``.

    The total test size is ``round(n * test_fraction)``; it is shared among labels by largest remainder
    so per-label rounding never makes the total drift.
    """
    n = len(labels)
    if n < 2:
        raise DataError(f"data source {source!r} returned {n} sample(s); need at least 2 to split")
    n_test = min(max(round(n * test_fraction), 1), n - 1)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * (n_test / n)
    per_class = np.floor(quotas).astype(np.int64)
    # Largest remainder, ties broken by class order (stable sort) so the result is deterministic.
    order = np.argsort(-(quotas - per_class), kind="stable")
    per_class[order[: n_test - int(per_class.sum())]] += 1
    test_parts = []
    for cls, k in zip(classes, per_class):
        members = np.flatnonzero(labels == cls)
        test_parts.append(rng.permutation(members)[:k])
    test = np.sort(np.concatenate(test_parts)).astype(np.int64)
    train = np.setdiff1d(np.arange(n, dtype=np.int64), test)
    return train, test


def _cap(table: pa.Table, cap: int | None, rng: np.random.Generator) -> pa.Table:
    """A seeded random subset of ``table``'s rows of size ``cap`` (in row order), or all of them."""
    if cap is None or cap >= table.num_rows:
        return table
    return table.take(pa.array(np.sort(rng.choice(table.num_rows, size=cap, replace=False))))


# Every module of this package registers its source on import: a new source is one new file.
import_submodules(__name__)

__all__ = ["DATA_SOURCES", "SPLITS", "DatasetSplits", "SourceData", "SourceFn", "load_further",
           "load_primary", "load_source", "needs_root", "read_source", "reads_files"]
