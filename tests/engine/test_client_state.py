"""The client-state store keeps at most N states in memory and spills the rest, losing nothing."""

from __future__ import annotations

import pytest
import torch

from fedray.engine.client_state import ClientStateStore


def test_spills_least_recently_used_and_reads_back(tmp_path):
    store = ClientStateStore(tmp_path, max_in_memory=2)
    for cid in range(5):
        store.update(cid, control_variate={"w": torch.full((3,), float(cid))})
    assert len(store) == 5 and store.in_memory == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"client-{c}.pt" for c in range(3)]
    assert torch.equal(store.get(0)["control_variate"]["w"], torch.zeros(3))
    assert store.in_memory == 2
    store.update(1, adapter={"a": torch.ones(1)})
    assert set(store.get(1)) == {"control_variate", "adapter"}
    assert store.get(99) is None


def test_state_dict_round_trip_includes_spilled(tmp_path):
    store = ClientStateStore(tmp_path / "a", max_in_memory=1)
    for cid in range(3):
        store.update(cid, x=torch.tensor([cid]))
    copy = ClientStateStore(tmp_path / "b", max_in_memory=1)
    copy.load_state_dict(store.state_dict())
    assert [int(copy.get(c)["x"]) for c in range(3)] == [0, 1, 2]


def test_cap_needs_a_directory():
    with pytest.raises(ValueError, match="spill directory"):
        ClientStateStore(max_in_memory=3)
