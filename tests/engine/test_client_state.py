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
    # one file per spilled client, named client-<id>-<version>.pt (a version is written once)
    assert sorted(p.name.split("-")[1] for p in tmp_path.iterdir()) == [str(c) for c in range(3)]
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


def _variate(value: float) -> dict:
    return {"w": torch.full((3,), value)}


def _checkpointed_store(tmp_path, clients: int, max_in_memory: int):
    """A store holding clients 0..clients-1 (client i's variate all i), checkpointed: (store, index)."""
    store = ClientStateStore(tmp_path, max_in_memory=max_in_memory)
    for cid in range(clients):
        store.update(cid, control_variate=_variate(cid))
    index = store.checkpoint_index()
    store.committed(index)
    return store, index


def test_a_checkpoint_index_writes_only_changed_states(tmp_path):
    store, first = _checkpointed_store(tmp_path, clients=6, max_in_memory=2)
    assert sorted(first) == list(range(6)) and len(list(tmp_path.iterdir())) == 6
    store.update(1, control_variate=_variate(10.0))  # one client changes before the next checkpoint
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    second = store.checkpoint_index()
    changed = {cid for cid in second if second[cid] != first[cid]}
    assert changed == {1}, "only the changed state is written again"
    assert all(name in before for cid, e in second.items() if cid != 1 for name in [e["file"]])
    assert first[1]["file"] in {p.name for p in tmp_path.iterdir()}, "kept until the checkpoint is written"
    store.committed(second)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(e["file"] for e in second.values())


def test_resuming_from_an_index_gives_back_the_checkpointed_states(tmp_path):
    store, index = _checkpointed_store(tmp_path, clients=3, max_in_memory=1)
    store.update(0, control_variate=_variate(99.0))  # after the checkpoint: lost by a kill
    store.update(2, control_variate=_variate(98.0))
    again = ClientStateStore(tmp_path, max_in_memory=1)
    again.load_index(index)
    assert [float(again.get(c)["control_variate"]["w"][0]) for c in range(3)] == [0.0, 1.0, 2.0]
    again.update(1, control_variate=_variate(5.0))
    again.update(2, control_variate=_variate(6.0))  # new versions never overwrite a checkpointed file
    assert all((tmp_path / e["file"]).exists() for e in index.values())


def test_a_changed_state_file_is_a_clear_error(tmp_path):
    from fedray.errors import FedRayError

    store = ClientStateStore(tmp_path, max_in_memory=1)
    store.update(0, control_variate=_variate(1.0))
    index = store.checkpoint_index()
    (tmp_path / index[0]["file"]).write_bytes(b"not a tensor file")
    again = ClientStateStore(tmp_path, max_in_memory=1)
    again.load_index(index)
    with pytest.raises(FedRayError, match="client state .* missing or changed"):
        again.get(0)
