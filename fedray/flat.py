"""Adapter states as one flat buffer: a contiguous byte array plus a fixed layout of its tensors.

Why: the adapter crosses a process boundary twice per fit. As a dict of many small tensors each hop pickles
every tensor on its own and the reader gets fresh copies; as one numpy byte array it crosses Ray's object
store out of band (pickle protocol 5) and the reader's tensors are views into the shared buffer, not
copies. The layout (key, shape, dtype, byte offset per tensor) is a property of the model, fixed for a
run, so packing is one copy per tensor into a fresh buffer and reading is free.

A :class:`FlatState` is a read-only ``Mapping[str, torch.Tensor]`` in the layout's key order, so the
strategies, the objectives and safetensors read it exactly as they read a ``dict`` of tensors. Its views
of a buffer that came out of the object store point into read-only shared memory: never write into them
(every consumer in fedray copies: ``.to(float64)``, ``copy_`` into a model, ``clone``).

The same buffer reads as one numpy array (:meth:`FlatState.typed_array`) where numpy has the dtype, so
the aggregator averages and checks adapters without importing torch (≈200 MiB and a second of CPU in a
process that only sums buffers); torch is imported only by code that asks for a tensor.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from fedray.lazy import lazy_import

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)

#: Byte alignment of every tensor in the buffer: a multiple of every element size, and of cache lines.
ALIGN = 64


@dataclass(frozen=True)
class Slot:
    """Where one tensor lives in the buffer."""

    key: str
    shape: tuple[int, ...]
    dtype: str  # a torch dtype's name, e.g. "float32" (numpy has no bfloat16, so bytes carry the values)
    offset: int  # bytes from the start of the buffer, a multiple of ALIGN
    nbytes: int

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @property
    def itemsize(self) -> int:
        """Bytes per element, read without importing torch where numpy knows the dtype."""
        known = numpy_dtype(self.dtype)
        return known.itemsize if known is not None else self.torch_dtype.itemsize


@dataclass(frozen=True)
class Layout:
    """The fixed arrangement of an adapter's tensors in one buffer (in the state's own key order)."""

    slots: tuple[Slot, ...]
    nbytes: int  # the buffer's size, padding included

    @classmethod
    def of(cls, state: Mapping[str, torch.Tensor]) -> Layout:
        """The layout of ``state``'s tensors, each starting on an ALIGN boundary."""
        slots, offset = [], 0
        for key, tensor in state.items():
            nbytes = tensor.numel() * tensor.element_size()
            dtype = str(tensor.dtype).removeprefix("torch.")
            slots.append(Slot(key, tuple(tensor.shape), dtype, offset, nbytes))
            offset += -(-nbytes // ALIGN) * ALIGN
        return cls(tuple(slots), offset)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(slot.key for slot in self.slots)

    @cached_property
    def dtype(self) -> str | None:
        """The one dtype of every tensor, or None when they differ."""
        dtypes = {slot.dtype for slot in self.slots}
        return dtypes.pop() if len(dtypes) == 1 else None

    def element(self, slot: Slot) -> slice:
        """Where ``slot`` lies in the buffer counted in elements of its dtype (for a one-dtype layout)."""
        size = slot.itemsize
        return slice(slot.offset // size, slot.offset // size + slot.nbytes // size)

    @property
    def payload_nbytes(self) -> int:
        """The tensors' bytes, padding excluded (what the adapter weighs on the wire)."""
        return sum(slot.nbytes for slot in self.slots)


class FlatState(Mapping[str, "torch.Tensor"]):
    """An adapter state held as one byte buffer; ``state[key]`` is a view, never a copy."""

    __slots__ = ("layout", "buffer", "_views", "_typed")

    def __init__(self, layout: Layout, buffer: np.ndarray) -> None:
        if buffer.dtype != np.uint8 or buffer.ndim != 1 or buffer.size != layout.nbytes:
            raise ValueError(f"a FlatState buffer is 1-D uint8 of {layout.nbytes} bytes; got "
                             f"{buffer.dtype} {buffer.shape}")
        self.layout = layout
        self.buffer = buffer
        self._views: dict[str, torch.Tensor] | None = None
        self._typed: torch.Tensor | None = None

    @classmethod
    def empty(cls, layout: Layout) -> FlatState:
        """A fresh, writable buffer for ``layout`` (padding zeroed, tensors to be filled)."""
        return cls(layout, _zero_padding(layout, np.empty(layout.nbytes, dtype=np.uint8)))

    @classmethod
    def pack(cls, state: Mapping[str, torch.Tensor], layout: Layout | None = None) -> FlatState:
        """``state`` copied into one fresh buffer (one copy per tensor; from any device)."""
        if isinstance(state, FlatState) and (layout is None or layout == state.layout):
            return cls(state.layout, state.buffer.copy())
        flat = cls.empty(layout or Layout.of(state))
        with torch.no_grad():
            for slot in flat.layout.slots:
                flat[slot.key].copy_(state[slot.key])
        return flat

    def _tensors(self) -> dict[str, torch.Tensor]:
        if self._views is None:
            self._views = self._split(self._raw())
        return self._views

    def _raw(self) -> torch.Tensor:
        with warnings.catch_warnings():  # a buffer read from the object store is read-only
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(self.buffer)  # (nbytes,) uint8, shares memory

    def _split(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of each tensor in ``raw``, a (nbytes,) uint8 tensor holding this layout."""
        return {slot.key: raw[slot.offset:slot.offset + slot.nbytes].view(slot.torch_dtype).view(slot.shape)
                for slot in self.layout.slots}

    def typed(self) -> torch.Tensor | None:
        """The whole buffer as one 1-D tensor of the tensors' dtype (padding reads as zeros), or None
        when the tensors have more than one dtype. Element-wise math on it is the same math as on
        each tensor, in one operation instead of one per tensor."""
        if self._typed is None and self.layout.dtype is not None:
            self._typed = self._raw().view(getattr(torch, self.layout.dtype))
        return self._typed

    def typed_array(self) -> np.ndarray | None:
        """The whole buffer as one 1-D numpy array of the tensors' dtype (a view, padding reads as
        zeros), or None when the tensors have more than one dtype or one numpy lacks (bfloat16).
        What the aggregator computes with, so that it need not import torch."""
        dtype = numpy_dtype(self.layout.dtype) if self.layout.dtype is not None else None
        return None if dtype is None else self.buffer.view(dtype)

    def arrays(self) -> dict[str, np.ndarray] | None:
        """The tensors as numpy views of the buffer (key → array of its shape), or None when one of
        them has a dtype numpy lacks (bfloat16): what a file is written from without torch."""
        dtypes = [numpy_dtype(slot.dtype) for slot in self.layout.slots]
        if any(dtype is None for dtype in dtypes):
            return None
        return {slot.key: self.buffer[slot.offset:slot.offset + slot.nbytes].view(dtype).reshape(slot.shape)
                for slot, dtype in zip(self.layout.slots, dtypes)}

    @classmethod
    def from_array(cls, layout: Layout, values: np.ndarray) -> FlatState:
        """A FlatState owning ``values`` (a fresh 1-D array covering the whole buffer in the layout's
        dtype, as :meth:`typed_array` reads it), its padding set to zero."""
        return cls(layout, _zero_padding(layout, np.ascontiguousarray(values).view(np.uint8)))

    def on(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """The tensors on ``device``, moved in one copy of the whole buffer (views of it there)."""
        return self._split(self._raw().to(device))

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._tensors()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layout.keys)

    def __len__(self) -> int:
        return len(self.layout.slots)

    def __contains__(self, key: object) -> bool:
        return key in self._tensors()

    @property
    def nbytes(self) -> int:
        """The tensors' bytes (padding excluded)."""
        return self.layout.payload_nbytes

    def to_dict(self) -> dict[str, torch.Tensor]:
        """Independent, writable copies of the tensors (for checkpoints and for callers that mutate)."""
        return {key: tensor.clone() for key, tensor in self._tensors().items()}

    def __reduce__(self) -> tuple[Any, ...]:
        # Only the layout and the buffer travel; the views are rebuilt on the other side.
        return FlatState, (self.layout, self.buffer)

    def __repr__(self) -> str:
        return f"FlatState({len(self)} tensors, {self.nbytes} bytes)"


def _zero_padding(layout: Layout, buffer: np.ndarray) -> np.ndarray:
    """``buffer`` with the bytes between and after the layout's tensors set to zero."""
    end = 0
    for slot in layout.slots:
        buffer[end:slot.offset] = 0
        end = slot.offset + slot.nbytes
    buffer[end:] = 0
    return buffer


def numpy_dtype(name: str) -> np.dtype | None:
    """numpy's dtype of the torch dtype called ``name`` ("float32"), or None when numpy has none
    (bfloat16, the float8 types)."""
    try:
        return np.dtype(name)
    except TypeError:
        return None


def as_flat(state: Mapping[str, torch.Tensor], layout: Layout | None = None) -> FlatState:
    """``state`` itself when it already is a FlatState (of ``layout``), else packed into one."""
    if isinstance(state, FlatState) and (layout is None or state.layout == layout):
        return state
    return FlatState.pack(state, layout)
