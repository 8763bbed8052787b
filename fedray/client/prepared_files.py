"""What one prepared file holds, and how it is built: encoded samples, or their vision features.

A samples file has one row per sample: ``id``; its prompt's per-token tensors (``tok.<key>``, input_ids
first); ``answer_ids``; its per-image tensors (``vis.<key>``), each a tensor column
(:mod:`fedray.client.tensor_columns`), null where a sample has no such tensor. A features file has one
``features`` column, row for row with its samples file (null for samples without an image).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import torch

from fedray.client.tensor_columns import TensorColumn, tensor_fields
from fedray.data.modality import mask_rows
from fedray.models.collate import Collator, Encoded

#: The columns of a sample that its encoding reads.
CONTENT_COLUMNS: tuple[str, ...] = ("id", "image", "text", "question", "choices", "answer")
TOKENS, VISION, ANSWER = "tok.", "vis.", "answer_ids"


def table_fingerprint(table: pa.Table) -> str:
    """A digest of the sample content of ``table`` (the :data:`CONTENT_COLUMNS` of every row, in order)."""
    h = hashlib.sha256()
    for name in CONTENT_COLUMNS:
        h.update(name.encode())
        for value in table.column(name).to_pylist():
            _feed(h, value)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    # Type tag + length + bytes: no two different values feed the same bytes.
    if value is None:
        h.update(b"n")
    elif isinstance(value, (list, tuple)):
        h.update(b"l%d:" % len(value))
        for item in value:
            _feed(h, item)
    else:
        raw = value if isinstance(value, bytes) else str(value).encode()
        h.update(b"b" if isinstance(value, bytes) else b"s")
        h.update(b"%d:" % len(raw))
        h.update(raw)


def encoder(collator: Collator, table: pa.Table, positions: np.ndarray,
            mask: int) -> Callable[[], pa.RecordBatch]:
    """The builder of one unit: rows at ``positions``, masked, encoded, as one record batch."""
    def build() -> pa.RecordBatch:
        rows = mask_rows(table.take(pa.array(positions)).to_pylist(), [mask] * len(positions))
        return encoded_batch([collator.encode(row) for row in rows])
    return build


def encoded_batch(samples: Sequence[Encoded]) -> pa.RecordBatch:
    """Encoded samples as one record batch: ids, per-token tensors, answer ids, per-image tensors."""
    fields: dict[pa.Field, pa.Array] = {pa.field("id", pa.string()):
                                        pa.array([None if s.sample_id is None else str(s.sample_id)
                                                  for s in samples], type=pa.string())}
    token_keys = sorted({k for s in samples for k in s.tokens}, key=lambda k: (k != "input_ids", k))
    for key in token_keys:
        fields.update(tensor_fields(TOKENS + key, [s.tokens.get(key) for s in samples]))
    fields.update(tensor_fields(ANSWER, [s.answer_ids for s in samples]))
    for key in sorted({k for s in samples for k in s.vision}):
        fields.update(tensor_fields(VISION + key, [s.vision.get(key) for s in samples]))
    return pa.record_batch(list(fields.values()), schema=pa.schema(list(fields)))


def featurizer(features: Any, batch: pa.RecordBatch) -> Callable[[], pa.RecordBatch]:
    """The builder of one features file: the unit's images through the frozen encoder, in batches."""
    def build() -> pa.RecordBatch:
        name = VISION + features.input_key
        pixels = TensorColumn(batch, name) if name in batch.schema.names else None
        per_row: list[torch.Tensor | None] = [None] * batch.num_rows
        with_image = [i for i in range(batch.num_rows) if pixels is not None and pixels[i] is not None]
        for start in range(0, len(with_image), features.batch_size):
            rows = with_image[start: start + features.batch_size]
            inputs = [pixels[i] for i in rows]
            out = features.compute(torch.cat(inputs))  # (images, ...) on CPU
            offsets = np.cumsum([0] + [len(t) for t in inputs])
            for i, lo, hi in zip(rows, offsets, offsets[1:]):
                per_row[i] = out[lo:hi]
        fields = tensor_fields("features", per_row)
        return pa.record_batch(list(fields.values()), schema=pa.schema(list(fields)))
    return build
