"""Stop the driver between rounds and resume: the history equals an uninterrupted run's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fedray.engine.checkpoint import load_checkpoint
from fedray.engine.history import read_history
from fedray.engine.observers import RoundCallback
from fedray.engine.simulation import Simulation
from fedray.errors import FedRayError
from tests.engine.test_simulation import small_scenario

pytestmark = pytest.mark.ray


class Stop(Exception):
    """Stands for the driver dying between rounds."""


def _without_timings(history):
    measured = {"time_s", "compute_s", "memory_mb"}  # wall time and memory, not results
    return [{k: v for k, v in record.items() if k not in measured} for record in history]


def test_resume_reproduces_the_uninterrupted_history(ray_cluster, tmp_path):
    base = small_scenario()
    s = replace(base, federation=replace(base.federation, rounds=3),
                strategy=replace(base.strategy, name="fedadam", options={"eta": 1e-2}),
                data=replace(base.data, validation_fraction=0.1))
    Simulation(s, tmp_path / "whole").execute()

    def stop_after_round_2(record):
        if record.server_round == 2:
            raise Stop()  # after round 2's record is written, before its checkpoint

    with pytest.raises(Stop):
        Simulation(s, tmp_path / "cut", [RoundCallback(stop_after_round_2)]).execute()
    assert load_checkpoint(tmp_path / "cut")["round"] == 1
    assert len(read_history(tmp_path / "cut" / "history.jsonl")) == 3  # rounds 0, 1, 2

    summary = Simulation(s, tmp_path / "cut", resume=True).execute()
    whole = read_history(tmp_path / "whole" / "history.jsonl")
    resumed = read_history(tmp_path / "cut" / "history.jsonl")
    assert _without_timings(resumed) == _without_timings(whole)
    assert [r.server_round for r in summary.rounds] == [0, 1, 2, 3]
    assert load_checkpoint(tmp_path / "cut")["round"] == 3


def test_resume_without_checkpoint_is_a_clear_error(ray_cluster, tmp_path):
    s = small_scenario()
    s = replace(s, federation=replace(s.federation, rounds=1, checkpoint_every=0))
    Simulation(s, tmp_path).execute()
    with pytest.raises(FedRayError, match="no checkpoint.pt to resume from"):
        Simulation(s, tmp_path, resume=True).execute()
