"""Tensors in Arrow columns: one tensor (or null) per row, read back as views of a memory-mapped file.

A column holds each row's tensor as raw bytes (``large_binary``) with its shape in a sibling column and
its dtype in the field's metadata, so any dtype (bfloat16 too) and any shape round-trip exactly. Reading
makes one uint8 tensor over the column's data buffer, with no copy; a row's tensor is a slice of it
viewed as its dtype and shape. Those views are read-only in spirit: the batch code only concatenates and
pads them into new tensors, and nothing may write into them.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pyarrow as pa
import torch

from fedray.errors import DataError

_DTYPES: dict[str, torch.dtype] = {str(d): d for d in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
    torch.int8, torch.uint8, torch.bool)}
_SHAPE = ".shape"


def tensor_fields(name: str, tensors: Sequence[torch.Tensor | None]) -> dict[pa.Field, pa.Array]:
    """The two columns (bytes, shape) that hold ``tensors``, one per row (None: a null row)."""
    dtypes = {str(t.dtype) for t in tensors if t is not None}
    if len(dtypes) > 1:
        raise DataError(f"column {name!r}: rows hold tensors of several dtypes {sorted(dtypes)}; "
                        "a column has one dtype")
    dtype = dtypes.pop() if dtypes else "torch.uint8"
    if dtype not in _DTYPES:
        raise DataError(f"column {name!r}: dtype {dtype} cannot be stored; known: {sorted(_DTYPES)}")
    data = [None if t is None else _bytes(t) for t in tensors]
    shapes = [None if t is None else list(t.shape) for t in tensors]
    field = pa.field(name, pa.large_binary(), metadata={"dtype": dtype})
    return {field: pa.array(data, type=pa.large_binary()),
            pa.field(name + _SHAPE, pa.list_(pa.int64())): pa.array(shapes, type=pa.list_(pa.int64()))}


def _bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()  # a byte view works for every dtype, bfloat16 too


class TensorColumn:
    """The tensors of one column of a record batch, each a view of the batch's memory (no copy)."""

    def __init__(self, batch: pa.RecordBatch, name: str) -> None:
        field = batch.schema.field(name)
        self.dtype = _DTYPES[field.metadata[b"dtype"].decode()]
        data: pa.LargeBinaryArray = batch.column(name)
        _, offsets, buffer = data.buffers()
        # (n + 1,) byte offsets into the data buffer (large_binary: int64), from the array's first row.
        self.offsets = np.frombuffer(offsets, dtype=np.int64)[data.offset: data.offset + len(data) + 1]
        self.valid = ~data.is_null().to_numpy(zero_copy_only=False)  # (n,)
        shapes: pa.ListArray = batch.column(name + _SHAPE)
        self.shape_offsets = shapes.offsets.to_numpy()
        self.shape_values = shapes.values.to_numpy()
        with warnings.catch_warnings():  # the mapped file is read-only; nothing writes into these views
            warnings.simplefilter("ignore", UserWarning)
            raw = np.frombuffer(buffer, dtype=np.uint8) if buffer is not None else np.zeros(0, np.uint8)
            self.whole = torch.from_numpy(raw)  # (bytes,) over the mapped file
        self._keep = buffer  # the buffer (and the mapped file behind it) lives as long as the views

    def __len__(self) -> int:
        return len(self.valid)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        if not self.valid[i]:
            return None
        shape = tuple(int(x) for x in self.shape_values[self.shape_offsets[i]: self.shape_offsets[i + 1]])
        chunk = self.whole[int(self.offsets[i]): int(self.offsets[i + 1])]
        return chunk.view(self.dtype).view(shape)


def tensor_column_names(schema: pa.Schema, prefix: str) -> list[str]:
    """Names of the tensor columns under ``prefix`` (without their shape columns), prefix removed."""
    return [f.name[len(prefix):] for f in schema
            if f.name.startswith(prefix) and not f.name.endswith(_SHAPE)]


def ints(values: Sequence[int]) -> torch.Tensor:
    """A (n,) int64 tensor."""
    return torch.as_tensor(np.asarray(values, dtype=np.int64))
