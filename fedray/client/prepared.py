"""Prepared samples: each (sample, modality mask) encoded once, stored in Arrow files every actor maps.

Encoding a sample (chat template, tokenizer, PNG decoding, image processor) costs far more than a training
step's batching, and every fit used to redo it for every step. The store does it once per (row, mask)
variant a run needs and keeps the result, :class:`~fedray.models.collate.Encoded` per row, in Arrow IPC
files under the cache directory (:mod:`fedray.cache_files`); batches are then only selected, cut,
padded and stacked from memory-mapped views (:meth:`~fedray.models.collate.Collator.stack_train`), so they
equal ``Collator.train_batch`` of the masked rows bit for bit.

**Files.** A *unit* is up to ``shard_rows`` rows of one table under one mask, in one file named by a key of
everything its content depends on: the collator (:func:`collator_key`: processor, tokenizer and chat
template, fedray's prompt and batch code, library versions, the prompt style's fingerprint (style,
parameters, ``modality.agnostic_prompt``), ``max_length``), the
table's content (:func:`table_fingerprint`), the split name, the mask and the row positions. A second run
on the same data maps the files the first one wrote; anything that changes an input changes the key.

**Which rows.** The rows a run trains on can be declared (:meth:`PreparedStore.add`'s ``needs``: per mask,
the positions; :func:`train_needs` reads them off the client specs): their units are cut from the sorted
positions. Whatever is asked for and was not declared is covered by whole shards (positions
``[k·shard_rows, (k+1)·shard_rows)``) built when first asked for: eval sets always, training rows too
when no needs were given. Either way every actor cuts the same units, and which actor builds a unit
does not change its content.

**Vision features.** With a :class:`~fedray.models.features.VisionFeatures`, each unit's images also go
through the frozen vision encoder once, into a sibling features file, and samples carry those features
in place of their pixels.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from fedray.cache_files import CacheJob, cache_root, ensure_files, map_batch
from fedray.client.prepared_files import (
    ANSWER,
    TOKENS,
    VISION,
    encoder,
    featurizer,
    table_fingerprint,
)
from fedray.client.tensor_columns import TensorColumn, tensor_column_names
from fedray.data.modality import BOTH, mask_rows
from fedray.errors import DataError
from fedray.models.collate import Collator, Encoded, Encodings
from fedray.models.fingerprint import code_digest, digest, processor_fingerprint

logger = logging.getLogger(__name__)

FORMAT = 1  # raise when the files' layout changes
SHARD_ROWS = 256


def collator_key(collator: Collator) -> str:
    """A digest of everything besides the row that decides what :meth:`Collator.encode` returns."""
    return digest({"format": FORMAT, "processor": processor_fingerprint(collator.processor),
                   "prompt": collator.prompt.fingerprint(), "max_length": collator.max_length,
                   "store_code": code_digest(["fedray.client.prepared", "fedray.client.prepared_files",
                                               "fedray.client.tensor_columns"])})


class _Unit:
    """The encoded samples of one unit file (and its features file), read as views of the mapped files."""

    def __init__(self, batch: pa.RecordBatch, features: pa.RecordBatch | None, feature_key: str) -> None:
        self.ids = batch.column("id").to_pylist()
        self.tokens = _columns(batch, TOKENS)
        self.vision = _columns(batch, VISION)
        self.answer = TensorColumn(batch, ANSWER)
        self.features = TensorColumn(features, "features") if features is not None else None
        self.feature_key = feature_key

    def encoded(self, i: int) -> Encoded:
        tokens = {k: t for k, col in self.tokens.items() if (t := col[i]) is not None}
        vision = {k: t for k, col in self.vision.items() if (t := col[i]) is not None}
        cached = self.features[i] if self.features is not None else None
        if cached is not None:
            vision[self.feature_key] = cached
        return Encoded(tokens=tokens, vision=vision, answer_ids=self.answer[i], sample_id=self.ids[i])


class _Split:
    """One table's loaded units and, per mask, where each row's encoding is."""

    def __init__(self, name: str, table: pa.Table) -> None:
        self.name, self.table = name, table
        self.fingerprint = table_fingerprint(table)
        self.units: list[_Unit] = []
        self.where: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # mask → (unit index, row in unit)

    def lookup(self, mask: int) -> tuple[np.ndarray, np.ndarray]:
        if mask not in self.where:
            n = self.table.num_rows
            self.where[mask] = (np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64))
        return self.where[mask]


class PreparedStore:
    """Encoded samples of the tables an actor holds, built once and shared through the cache directory."""

    def __init__(self, collator: Collator, cache_dir: str | Path | None = None, features: Any = None,
                 shard_rows: int = SHARD_ROWS) -> None:
        self.collator = collator
        self.root = cache_root(cache_dir)
        self.features = features  # a fedray.models.features.VisionFeatures, or None
        self.shard_rows = shard_rows
        self.key = collator_key(collator)
        self.splits: dict[str, _Split] = {}
        self.built: list[Path] = []  # files this process wrote (the rest were found in the cache)
        self.mapped: list[Path] = []

    def add(self, name: str, table: pa.Table, needs: Mapping[int, Sequence[int]] | None = None) -> None:
        """Hold ``table`` as split ``name``; prepare the declared ``needs`` (mask → positions) now."""
        split = self.splits[name] = _Split(name, table)
        for mask, positions in sorted((needs or {}).items()):
            ordered = np.unique(np.asarray(positions, dtype=np.int64))
            _check_positions(split, ordered)
            chunks = [ordered[i: i + self.shard_rows] for i in range(0, len(ordered), self.shard_rows)]
            self._load(split, mask, chunks)

    def encodings(self, name: str, positions: Sequence[int], masks: Sequence[int]) -> PreparedEncodings:
        """The samples at ``positions`` of split ``name``, each under its mask (prepared if not yet)."""
        split = self._split(name)
        positions, masks = np.asarray(positions, dtype=np.int64), np.asarray(masks, dtype=np.int64)
        if positions.shape != masks.shape:
            raise DataError(f"{len(positions)} rows but {len(masks)} modality masks")
        _check_positions(split, positions)
        for mask in np.unique(masks).tolist():
            self._cover(split, int(mask), positions[masks == mask])
        return PreparedEncodings(self, split, positions, masks)

    def answer_lengths(self, name: str) -> list[int]:
        """Tokens of each row's target answer (end-of-turn included), all modalities present."""
        split = self._split(name)
        samples = self.encodings(name, range(split.table.num_rows), [BOTH] * split.table.num_rows)
        return [len(samples.encoded(i).answer_ids) for i in range(len(samples))]

    # -- building -------------------------------------------------------------------------------
    def _split(self, name: str) -> _Split:
        if name not in self.splits:
            raise DataError(f"no prepared table named {name!r}; known: {sorted(self.splits)}")
        return self.splits[name]

    def _cover(self, split: _Split, mask: int, positions: np.ndarray) -> None:
        """Load whole shards for the ``positions`` that no loaded unit holds under ``mask``."""
        units, _ = split.lookup(mask)
        missing = positions[units[positions] < 0]
        if not len(missing):
            return
        n, size = split.table.num_rows, self.shard_rows
        chunks = [np.arange(k * size, min((k + 1) * size, n)) for k in np.unique(missing // size).tolist()]
        self._load(split, mask, chunks)

    def _load(self, split: _Split, mask: int, chunks: Sequence[np.ndarray]) -> None:
        paths = [self._unit_path(split, mask, chunk) for chunk in chunks]
        self._ensure([CacheJob(p, encoder(self.collator, split.table, chunk, mask))
                      for p, chunk in zip(paths, chunks)])
        batches = [map_batch(p) for p in paths]
        feature_batches = self._features(paths, batches)
        units, rows = split.lookup(mask)
        for chunk, batch, features in zip(chunks, batches, feature_batches):
            split.units.append(_Unit(batch, features, getattr(self.features, "input_key", "")))
            fresh = units[chunk] < 0
            units[chunk[fresh]] = len(split.units) - 1
            rows[chunk[fresh]] = np.arange(len(chunk))[fresh]
        self.mapped += paths

    def _features(self, paths: list[Path], batches: list[pa.RecordBatch]) -> list[pa.RecordBatch | None]:
        """Each unit's features file (None for a unit without images, or without a feature cache)."""
        jobs: list[CacheJob | None] = [None] * len(paths)
        for i, (path, batch) in enumerate(zip(paths, batches)):
            pixels = VISION + getattr(self.features, "input_key", "")
            if self.features is not None and pixels in batch.schema.names \
                    and batch.column(pixels).null_count < batch.num_rows:
                name = f"{path.stem}-{digest([path.name, self.features.fingerprint])[:24]}.arrow"
                jobs[i] = CacheJob(self.root / "features" / name, featurizer(self.features, batch))
        self._ensure([job for job in jobs if job is not None])
        self.mapped += [job.path for job in jobs if job is not None]
        return [None if job is None else map_batch(job.path) for job in jobs]

    def _ensure(self, jobs: list[CacheJob]) -> None:
        if not jobs:
            return
        before = {job.path for job in jobs if job.path.exists()}
        ensure_files([_recorded(job, self.built) for job in jobs])
        if len(before) < len(jobs):
            logger.info("prepared %d of %d sample files (%d found in %s)", len(jobs) - len(before),
                        len(jobs), len(before), self.root)

    def _unit_path(self, split: _Split, mask: int, chunk: np.ndarray) -> Path:
        rows = hashlib.sha256(np.ascontiguousarray(chunk, dtype=np.int64).tobytes()).hexdigest()
        key = digest({"collator": self.key, "table": split.fingerprint, "split": split.name, "mask": mask,
                      "rows": rows})
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in split.name)
        return self.root / "prepared" / f"{safe}-m{mask}-{key[:40]}.arrow"


def _columns(batch: pa.RecordBatch, prefix: str) -> dict[str, TensorColumn]:
    return {k: TensorColumn(batch, prefix + k) for k in tensor_column_names(batch.schema, prefix)}


def _check_positions(split: _Split, positions: np.ndarray) -> None:
    if len(positions) and (positions.min() < 0 or positions.max() >= split.table.num_rows):
        raise DataError(f"rows {positions.min()}..{positions.max()} asked of {split.name!r}, which has "
                        f"{split.table.num_rows} rows; the client specs and the table do not match")


def _recorded(job: CacheJob, built: list[Path]) -> CacheJob:
    """``job``, noting its path in ``built`` when this process builds it."""
    def build() -> pa.RecordBatch:
        built.append(job.path)
        return job.build()
    return CacheJob(job.path, build)


class PreparedEncodings(Encodings):
    """Some rows of a prepared split, each under its own mask, in the order asked for."""

    def __init__(self, store: PreparedStore, split: _Split, positions: np.ndarray, masks: np.ndarray) -> None:
        self.collator = store.collator
        self.split, self.positions, self.masks = split, positions, masks

    def __len__(self) -> int:
        return len(self.positions)

    def encoded(self, i: int) -> Encoded:
        units, rows = self.split.where[int(self.masks[i])]
        position = self.positions[i]
        return self.split.units[units[position]].encoded(int(rows[position]))

    def row(self, i: int) -> Mapping[str, Any]:
        row = self.split.table.slice(int(self.positions[i]), 1).to_pylist()
        return mask_rows(row, [int(self.masks[i])])[0]
