"""Data sources: registered loaders that turn a dataset into one table of samples.

A source is a function ``(**options) -> (table, label_names, task)`` that returns ALL of its samples in
the :data:`~fedray.data.schema.SAMPLE_SCHEMA`. Splitting into train and held-out test, and capping sizes,
happens once here in :func:`load_source`, so every source gets the same seeded, stratified split.
A source that reads files declares a ``root`` parameter; it then receives ``data.root`` from the config.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from fedray.config.schema import DataConfig
from fedray.data.schema import validate_table
from fedray.errors import DataError
from fedray.registry import Registry
from fedray.seeding import derive_rng

SourceFn = Callable[..., tuple[pa.Table, tuple[str, ...], str]]

DATA_SOURCES: Registry[SourceFn] = Registry("data source")


@dataclass(frozen=True)
class DatasetSplits:
    """The train and held-out test samples of one source, with the answer word of each label."""

    train: pa.Table
    test: pa.Table
    label_names: tuple[str, ...]
    task: str


def load_source(cfg: DataConfig, seed: int) -> DatasetSplits:
    """Load ``cfg.source`` with ``cfg.options``, draw a stratified test split and apply the size caps."""
    fn = DATA_SOURCES.get(cfg.source)
    kwargs = _source_kwargs(fn, cfg)
    table, label_names, task = fn(**kwargs)
    validate_table(table)
    train_idx, test_idx = _stratified_split(_labels_of(table), cfg.test_fraction,
                                            derive_rng(seed, "test_split"), cfg.source)
    train_idx = _cap(train_idx, cfg.max_train_samples, derive_rng(seed, "cap", "train"))
    test_idx = _cap(test_idx, cfg.max_test_samples, derive_rng(seed, "cap", "test"))
    return DatasetSplits(train=table.take(pa.array(train_idx)), test=table.take(pa.array(test_idx)),
                         label_names=tuple(label_names), task=str(task))


def _source_kwargs(fn: SourceFn, cfg: DataConfig) -> dict[str, Any]:
    """Check ``cfg.options`` against the source's signature and add ``root`` where it is accepted."""
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = sorted(n for n, p in params.items()
                      if n != "root" and p.kind not in (inspect.Parameter.VAR_KEYWORD,
                                                        inspect.Parameter.VAR_POSITIONAL))
    options = dict(cfg.options)
    if "root" in options:
        raise DataError(f"data.options.root is not an option; set data.root for source {cfg.source!r}")
    unknown = sorted(set(options) - set(accepted))
    if unknown and not takes_any:
        raise DataError(f"data source {cfg.source!r} got unknown option(s) {', '.join(unknown)}; "
                        f"accepted options: {', '.join(accepted) or '(none)'}")
    if "root" in params:
        root_param = params["root"]
        if cfg.root is None:
            if root_param.default is inspect.Parameter.empty:
                raise DataError(f"data source {cfg.source!r} reads files; set data.root to its directory")
        else:
            root = os.path.expanduser(cfg.root)
            if not os.path.exists(root):
                raise DataError(f"data.root {cfg.root!r} does not exist (data source {cfg.source!r}); "
                                "point data.root at the dataset directory")
            options["root"] = root
    return options


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


def _cap(indices: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """A seeded random subset of ``indices`` of size ``cap`` (kept sorted), or all of them."""
    if cap is None or cap >= len(indices):
        return indices
    return np.sort(rng.choice(indices, size=cap, replace=False))


# Built-in sources register themselves on import; keep these at the bottom so DATA_SOURCES exists.
from fedray.data.sources import digits  # noqa: E402, F401
