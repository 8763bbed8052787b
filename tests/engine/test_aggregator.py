"""The aggregator without a cluster: built from its set-up object, it aggregates, keeps what the strategy
asks per client (SCAFFOLD's variates, the local baseline's adapters) and round-trips a snapshot."""

from __future__ import annotations

import pytest
import ray
import torch

from fedray.config.schema import ObjectiveConfig, Scenario, StrategyConfig
from fedray.engine.aggregator import AggregatorActor, AggregatorSetup
from fedray.engine.tasks import FitReport
from fedray.strategies import ClientFailure


@pytest.fixture(autouse=True)
def _plain_values(monkeypatch):
    """The actor fetches ObjectRefs with ray.get; here the 'refs' are the states themselves."""
    monkeypatch.setattr(ray, "get", lambda refs, **_: refs)


def _setup(strategy="fedavg", isolated=False, **options):
    return AggregatorSetup(strategy=StrategyConfig(name=strategy, options=options),
                           objective=ObjectiveConfig(), num_clients=4, client_states_in_memory=8,
                           isolated=isolated)


def _report(cid, n=1, **extras):
    return FitReport(client_id=cid, num_examples=n, extras=extras)


def test_from_scenario_reads_only_the_sections_it_needs():
    scenario = Scenario(strategy=StrategyConfig(name="fedadam", options={"eta": 0.1}))
    setup = AggregatorSetup.from_scenario(scenario, isolated=True)
    assert setup == AggregatorSetup(strategy=scenario.strategy, objective=scenario.objective,
                                    num_clients=scenario.partition.num_clients,
                                    client_states_in_memory=scenario.federation.client_states_in_memory,
                                    isolated=True,
                                    checkpoints=scenario.federation.checkpoint_every > 0)


def test_aggregates_and_snapshots(tmp_path):
    actor = AggregatorActor(_setup("fedavgm", momentum=0.5), {"w": torch.zeros(2)}, str(tmp_path))
    states = [{"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 3.0])}]
    metrics = actor.aggregate(1, [_report(0, 1), _report(1, 3)], states, [ClientFailure(2, "timeout")])
    assert actor.get_global()["w"].tolist() == [0.25, 2.25]  # (1·[1, 0] + 3·[0, 3]) / 4, v₀ = Δ
    assert metrics == {"num_results": 2.0, "num_failures": 1.0, "num_rejected": 0.0}
    saved = actor.snapshot()
    actor.aggregate(2, [_report(0)], [{"w": torch.ones(2)}], [])
    actor.restore(saved)
    assert actor.get_global()["w"].tolist() == [0.25, 2.25]
    assert actor.strategy.velocity["w"].tolist() == [0.25, 2.25]


def test_scaffold_variates_go_to_the_store_and_come_back(tmp_path):
    actor = AggregatorActor(_setup("scaffold"), {"w": torch.zeros(1)}, str(tmp_path))
    first = actor.configure_fit(1, [0, 1])
    assert first[0].client_variate is None
    c_0, c_1 = {"w": torch.tensor([2.0])}, {"w": torch.tensor([-1.0])}
    reports = [_report(0, control_variate=c_0, control_delta=c_0),
               _report(1, control_variate=c_1, control_delta=c_1)]
    actor.aggregate(1, reports, [{"w": torch.ones(1)}, {"w": torch.ones(1)}], [])
    assert actor.strategy.control["w"].tolist() == [0.25]  # (2 − 1) / N with N = 4 clients in all
    again = actor.configure_fit(2, [0, 3])
    assert again[0].client_variate is c_0 and again[3].client_variate is None


def test_isolated_clients_keep_their_own_adapters(tmp_path):
    initial = {"w": torch.zeros(1)}
    actor = AggregatorActor(_setup(isolated=True), initial, str(tmp_path))
    metrics = actor.aggregate(1, [_report(2)], [{"w": torch.ones(1)}], [])
    assert metrics == {"clients_kept": 1.0}
    assert actor.get_client_state(2)["w"].tolist() == [1.0] and actor.get_client_state(0) is initial
    assert actor.get_global() is initial
