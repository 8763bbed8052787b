"""A real (tiny) run reports its start-up phases, each fit that comes back and each evaluation pass."""

from __future__ import annotations

import pytest

from fedray.config import scenario_from_dict
from fedray.engine.observers import Progress, RoundObserver, RunStart
from fedray.engine.simulation import Simulation

pytestmark = pytest.mark.ray


class ProgressRecorder(RoundObserver):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_progress(self, step: Progress) -> None:
        self.events.append((step.stage, step.label, step.done, step.total))

    def on_start(self, start: RunStart) -> None:
        self.events.append(("start",))


def test_a_run_reports_startup_fits_and_evaluation_progress(ray_cluster, tmp_path):
    scenario = scenario_from_dict({
        "name": "progress", "seed": 1,
        "data": {"source": "digits", "max_train_samples": 60, "max_test_samples": 12},
        "partition": {"name": "iid", "num_clients": 3, "min_client_size": 5},
        "model": {"max_length": 48},
        "lora": {"rank": 2},
        "train": {"local_steps": 1, "batch_size": 4},
        "federation": {"rounds": 1, "clients_per_round": 3},
        "eval": {"every": 1, "batch_size": 12, "max_new_tokens": 2},
        "resources": {"actors": 2, "cpus_per_actor": 0.5},
    })
    recorder = ProgressRecorder()
    Simulation(scenario, tmp_path, observers=[recorder]).execute()
    events = recorder.events
    start = events.index(("start",))
    startup = [e for e in events[:start] if e[0] == "startup"]
    labels = [label for _, label, done, _ in startup if done == 0]
    assert labels[0] == "starting Ray" and "loading the model on 2 actor(s)" in labels
    assert [label for _, label, done, _ in startup if done == 1] == labels  # every phase ends
    fits = [e for e in events if e[0] == "fit"]
    assert fits[0] == ("fit", "round 1", 0, 3) and fits[-1] == ("fit", "round 1", 3, 3)
    assert [done for *_, done, _ in fits[1:4]] == [1, 2, 3]  # one step per fit back
    evals = [e for e in events if e[0] == "eval"]
    assert evals[0] == ("eval", "test", 0, 12)
    assert ("eval", "test", 12, 12) in evals  # the shards' rows add up to the whole set
    assert all(e[0] != "startup" for e in events[start:])
