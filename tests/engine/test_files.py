"""A full disk or a missing permission stops a write with a clear error, the old file intact and no
temporary file left (the failures are simulated by patching the writes)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from fedray.engine import checkpoint as checkpoint_module
from fedray.engine.checkpoint import save_checkpoint, write_adapter
from fedray.engine.client_state import ClientStateStore
from fedray.engine.files import RunDirWriteError, write_atomically
from fedray.engine.history import HistoryWriter, RoundRecord


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _half_written_then_full(*args, **kwargs):
    tmp = next(a for a in args if isinstance(a, (str, Path)))  # the file argument
    with open(tmp, "wb") as handle:
        handle.write(b"half")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_tmp(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(RunDirWriteError, match="could not write .*summary.json: the disk is full"):
        write_atomically(target, _half_written_then_full)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_checkpoint_and_adapter_writes_on_a_full_disk(tmp_path, monkeypatch):
    payload = {"round": 1, "aggregator": {"global_state": {}, "strategy": {}, "clients": {}}, "driver": {}}
    save_checkpoint(tmp_path, payload)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(torch, "save", _half_written_then_full)
    with pytest.raises(RunDirWriteError, match="checkpoint.pt: the disk is full"):
        save_checkpoint(tmp_path, {**payload, "round": 2})
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", _half_written_then_full)
    with pytest.raises(RunDirWriteError, match="adapter_model.safetensors: the disk is full"):
        write_adapter(tmp_path, {"w": torch.ones(1)}, "global_adapter")
    assert not list(tmp_path.rglob("*.tmp"))
    assert checkpoint_module.inspect_checkpoint(tmp_path).round == 1


def test_a_client_state_spill_without_permission(tmp_path, monkeypatch):
    store = ClientStateStore(tmp_path, max_in_memory=1)
    store.update(0, control_variate={"w": torch.ones(1)})

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(torch, "save", denied)
    with pytest.raises(RunDirWriteError, match="client-0-0.pt: permission denied"):
        store.update(1, control_variate={"w": torch.ones(1)})  # evicts client 0 to its file
    assert not list(tmp_path.glob("*.tmp"))


def test_the_history_writer_reports_a_full_disk_with_its_file(tmp_path, monkeypatch):
    # The driver turns it into the run's stop message (tests/engine/test_faults.py); the record line
    # is either whole or cut, and a cut last line is repaired by a resume.
    writer = HistoryWriter(tmp_path / "history.jsonl")
    writer.append(RoundRecord(server_round=1))
    monkeypatch.setattr("pathlib.Path.open", _full_disk)
    with pytest.raises(RunDirWriteError, match="history.jsonl: the disk is full"):
        writer.append(RoundRecord(server_round=2))
