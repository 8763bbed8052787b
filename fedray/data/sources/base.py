"""What every data source shares: the registry, the value a source returns, and its calling convention.

A source is a function registered in :data:`DATA_SOURCES` with its frozen parameter dataclass. It is
called as ``(params)``, or as ``(params, root)`` when its parameter class says ``reads_files`` (it then
gets ``data.root``). The source modules import this one, never the package, so the package can import
them to register them without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from fedray.registry import Registry

SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class SourceData:
    """What a source returns: its samples by split, and the answer word of each label.

    ``splits`` maps a split name in :data:`SPLITS` to a sample table; ``train`` is required. Classification
    sources set ``label_names`` (``label`` column values index it); open-ended sources leave it empty.
    """

    splits: Mapping[str, pa.Table]
    label_names: tuple[str, ...]
    task: str
    notes: Mapping[str, Any] = field(default_factory=dict)


SourceFn = Callable[..., SourceData]

DATA_SOURCES: Registry[SourceFn] = Registry("data source")


def reads_files(name: str) -> bool:
    """Whether source ``name`` reads a dataset directory (``data.root``); its parameter class says so."""
    return bool(getattr(DATA_SOURCES.params_class(name), "reads_files", False))


def needs_root(name: str, options: Mapping[str, Any] | None = None) -> bool:
    """Whether source ``name`` with ``options`` must be given ``data.root``.

    A source that reads files needs it, unless its parameter class's ``needs_root(options)`` says
    otherwise (the ``hf`` source reading a dataset from the Hugging Face cache by id).
    """
    if not reads_files(name):
        return False
    decide = getattr(DATA_SOURCES.params_class(name), "needs_root", None)
    return bool(decide(dict(options or {}))) if decide is not None else True
