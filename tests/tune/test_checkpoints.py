"""Remote-storage sweeps carry a trial's engine checkpoint as a Tune checkpoint and put it back."""

from __future__ import annotations

from pathlib import Path

from fedray.engine.checkpoint import CHECKPOINT_FILE
from fedray.tune.checkpoints import RunDirCheckpoints, restore_run_dir


def test_a_checkpoint_is_offered_once_per_new_engine_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    checkpoints = RunDirCheckpoints(run_dir)
    assert checkpoints.new() is None  # no engine checkpoint yet
    (run_dir / CHECKPOINT_FILE).write_bytes(b"round 1")
    (run_dir / "history.jsonl").write_text("{}\n")
    first = checkpoints.new()
    assert first is not None and Path(first.path) == run_dir
    assert checkpoints.new() is None  # unchanged since
    import os

    os.utime(run_dir / CHECKPOINT_FILE, ns=(1, 1))  # rewritten by a later round
    assert checkpoints.new() is not None


def test_restore_puts_the_checkpointed_run_directory_back(tmp_path):
    from ray import tune

    saved = tmp_path / "saved"
    (saved / "client_states").mkdir(parents=True)
    (saved / CHECKPOINT_FILE).write_bytes(b"state")
    (saved / "client_states" / "3.pt").write_bytes(b"c")
    run_dir = tmp_path / "work" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "stale.txt").write_text("from a run that did not checkpoint")
    restore_run_dir(run_dir, tune.Checkpoint.from_directory(str(saved)))
    assert (run_dir / CHECKPOINT_FILE).read_bytes() == b"state"
    assert (run_dir / "client_states" / "3.pt").exists() and not (run_dir / "stale.txt").exists()
    restore_run_dir(run_dir, None)  # no Tune checkpoint: nothing changes
    assert (run_dir / CHECKPOINT_FILE).exists()
