"""Run modes as objects: each says how its cohort, budget, start adapters, evaluation and rounds differ.

Pure tests without Ray: adapters are stand-in strings and the scorer a fake (the whole runs of every
mode are in test_modes.py).
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from fedray.config import scenario_from_dict
from fedray.config.schema import Scenario
from fedray.data.manifest import ClientSpec
from fedray.data.modality import BOTH, IMAGE
from fedray.engine.history import RoundRecord
from fedray.engine.modes import RUN_MODES, build_run_mode, mean_metrics, pooled
from fedray.engine.sampler import sample_cohort
from fedray.errors import ConfigError
from fedray.registry import UnknownNameError


def scenario(mode: str = "federated", **train) -> Scenario:
    return scenario_from_dict({
        "seed": 4, "mode": mode, "partition": {"num_clients": 6},
        "train": {"local_steps": 5, **train},
        "federation": {"rounds": 3, "clients_per_round": 4},
        "eval": {"at_start": False},
    })


class States:
    """Stand-in adapter handles: the global one and each client's, as names."""

    def global_state(self) -> str:
        return "global"

    def client_state(self, client_id: int) -> str:
        return f"client{client_id}"


class Scorer:
    """Accuracy read off the adapter's name, so a test can see which adapter was scored."""

    scores = {"global": 0.5, "client0": 0.2, "client1": 0.4, "client2": 0.9}

    def test(self, state: str) -> dict[str, float]:
        return {"accuracy": self.scores[state]}

    def validate(self, state: str) -> dict[str, float]:
        return {"accuracy": self.scores[state] / 2}


def test_every_registered_mode_loads_and_an_unknown_one_is_refused_at_load():
    assert RUN_MODES.names() == ["centralized", "federated", "local", "zero_shot"]
    assert all(build_run_mode(scenario(m)).name == m for m in RUN_MODES.names())
    with pytest.raises(UnknownNameError, match="unknown run mode 'fedrated'.*Did you mean 'federated'"):
        RUN_MODES.get("fedrated")
    with pytest.raises(ConfigError, match="mode: unknown run mode 'fedrated'"):
        scenario("fedrated")


def test_federated_samples_a_seeded_cohort_and_keeps_the_budget():
    s = scenario()
    mode = build_run_mode(s)
    assert mode.cohort(2, 6, None) == sample_cohort(4, 2, 6, 4) and len(mode.cohort(2, 6, None)) == 4
    assert mode.cohort(2, 6, [0, 1, 5]) == [0, 1, 5]  # fewer available than asked: all of them
    assert mode.cohort(2, 1, []) == [0]  # a single client always trains
    assert mode.fits_per_round(6) == 4 and mode.fits_per_round(2) == 2
    assert mode.train_config() == s.train and mode.rounds == 3 and not mode.evaluates_round_zero
    assert mode.start_states([1, 2], States()) is None and not mode.isolated
    assert mode.header(6) == "6 clients, 4 per round, 3 rounds"


def test_federated_evaluates_the_global_adapter_and_keeps_it():
    record = RoundRecord(server_round=2)
    best = build_run_mode(scenario()).evaluate(record, Scorer(), States(), num_clients=3)
    assert best == "global" and record.eval == {"accuracy": 0.5}
    assert record.validation == {"accuracy": 0.25} and record.client_eval == {}


def test_centralized_pools_the_clients_and_trains_with_the_cohorts_budget():
    mode = build_run_mode(scenario("centralized"))
    assert mode.train_config().local_steps == 5 * 4  # local_steps × clients_per_round
    epochs = build_run_mode(replace(scenario("centralized"),
                                    train=replace(scenario().train, local_steps=None, local_epochs=1.0)))
    # 4 of 6 clients a round, each one pass over its own sixth: 4/6 of a pass over the pooled data
    assert epochs.train_config().local_epochs == pytest.approx(4 / 6)
    assert epochs.train_config().local_steps is None
    specs = [ClientSpec(0, (3, 1), "t", ("image",), masks=(IMAGE, IMAGE)), ClientSpec(1, (0,), "t")]
    (one,) = mode.client_specs(specs)
    assert one.indices == (3, 1, 0) and one.masks == (IMAGE, IMAGE, BOTH)
    assert one.modalities == ("image", "text") and mode.cohort(1, 1, [0]) == [0]
    assert mode.fits_per_round(1) == 1 and mode.header(6) == "6 clients pooled into one, 3 rounds"


def test_local_trains_everyone_from_their_own_adapter_and_reports_the_spread():
    mode = build_run_mode(scenario("local"))
    assert mode.isolated and mode.cohort(1, 3, [1]) == [0, 1, 2] and mode.fits_per_round(3) == 3
    assert mode.start_states([0, 2], States()) == {0: "client0", 2: "client2"}
    record = RoundRecord(server_round=1)
    assert mode.evaluate(record, Scorer(), States(), num_clients=3) is None  # no global adapter to keep
    assert record.client_eval == {0: {"accuracy": 0.2}, 1: {"accuracy": 0.4}, 2: {"accuracy": 0.9}}
    assert record.eval["accuracy"] == pytest.approx(0.5) and record.eval["accuracy_std"] > 0
    assert record.validation["accuracy"] == pytest.approx(0.25)


def test_local_round_zero_scores_the_shared_initial_adapter_without_keeping_it():
    record = RoundRecord(server_round=0)
    assert build_run_mode(scenario("local")).evaluate(record, Scorer(), States(), num_clients=3) is None
    assert record.eval == {"accuracy": 0.5} and record.client_eval == {}


def test_zero_shot_runs_no_round_and_evaluates_the_initial_model():
    mode = build_run_mode(scenario("zero_shot"))
    assert mode.rounds == 0 and mode.evaluates_round_zero
    assert "no training" in mode.header(6)


def test_mean_metrics_and_pooling_helpers():
    out = mean_metrics([{"accuracy": 0.0, "n": 4}, {"accuracy": 1.0}])
    assert out == {"accuracy": 0.5, "accuracy_std": 0.5, "n": 4.0, "n_std": 0.0}
    assert pooled([ClientSpec(0, (2,), "t")]).masks == (BOTH,)


def test_the_round_loop_has_no_mode_branch():
    source = (Path(__file__).parents[2] / "fedray" / "engine" / "simulation.py").read_text()
    compared = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Compare)
                and any(isinstance(side, ast.Attribute) and side.attr == "mode"
                        for side in [node.left, *node.comparators])]
    assert compared == []
