"""An adapter state as one flat buffer: views, not copies, in the state's key order; travels out of band."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from fedray.flat import ALIGN, FlatState, Layout, as_flat


def _state() -> dict[str, torch.Tensor]:
    return {"b.lora_A.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
            "a.lora_B.weight": torch.tensor([[1.5], [-2.0], [0.25]]),
            "proj.bias": torch.tensor([1.0, 2.0, 3.0], dtype=torch.bfloat16)}


def test_pack_keeps_order_values_and_dtypes_and_aligns_every_tensor():
    state = _state()
    flat = FlatState.pack(state)
    assert list(flat) == list(state) and len(flat) == 3
    assert all(torch.equal(flat[k], v) and flat[k].dtype == v.dtype for k, v in state.items())
    assert all(slot.offset % ALIGN == 0 for slot in flat.layout.slots)
    assert flat.nbytes == 6 * 4 + 3 * 4 + 3 * 2  # payload only, padding excluded
    assert flat.buffer.nbytes == flat.layout.nbytes >= flat.nbytes


def test_items_are_views_of_the_one_buffer():
    flat = FlatState.pack(_state())
    flat["a.lora_B.weight"][0, 0] = 7.0
    offset = flat.layout.slots[1].offset
    assert np.frombuffer(flat.buffer[offset:offset + 4].tobytes(), dtype=np.float32)[0] == 7.0
    copies = flat.to_dict()
    copies["a.lora_B.weight"][0, 0] = -1.0
    assert float(flat["a.lora_B.weight"][0, 0]) == 7.0


def test_pickle_sends_the_buffer_out_of_band_and_rebuilds_views():
    flat = FlatState.pack(_state())
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(flat, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1 and len(payload) < 2000  # the tensors are not in the pickle stream
    # The reader gets a read-only buffer (as from Ray's object store) and views of it.
    raw = bytes(buffers[0].raw())
    back = pickle.loads(payload, buffers=[memoryview(raw)])
    assert not back.buffer.flags.writeable
    assert all(torch.equal(back[k], v) for k, v in _state().items())


def test_layout_equality_and_as_flat_reuse():
    flat = FlatState.pack(_state())
    assert Layout.of(_state()) == flat.layout
    assert as_flat(flat) is flat
    again = as_flat(dict(flat))
    assert again is not flat and again.layout == flat.layout
    assert FlatState.pack(flat).buffer is not flat.buffer  # pack always copies


def test_on_device_moves_the_whole_buffer_once():
    flat = FlatState.pack(_state())
    moved = flat.on("cpu")
    assert all(torch.equal(moved[k], flat[k]) for k in flat)


def test_a_buffer_of_the_wrong_size_is_refused():
    layout = Layout.of(_state())
    with pytest.raises(ValueError, match="1-D uint8"):
        FlatState(layout, np.zeros(layout.nbytes + 1, dtype=np.uint8))
