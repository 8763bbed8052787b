"""Server and client halves wired through the engine: SCAFFOLD's variates, a FedOpt rule with FedProx."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fedray.config.schema import ObjectiveConfig, StrategyConfig
from fedray.engine.history import read_history
from fedray.engine.simulation import Simulation
from tests.engine.test_simulation import small_scenario

pytestmark = pytest.mark.ray


def test_scaffold_keeps_client_variates_across_rounds(ray_cluster, tmp_path):
    base = small_scenario()
    s = replace(base, strategy=StrategyConfig(name="scaffold"), train=replace(base.train, optimizer="sgd"),
                eval=replace(base.eval, every=0, at_start=False))
    sim = Simulation(s, tmp_path)
    sim.execute()
    history = read_history(tmp_path / "history.jsonl")
    norms = [h["aggregate"]["control_norm"] for h in history]
    assert norms[0] > 0 and norms[1] != norms[0], "the server variate moves every round"


@pytest.mark.slow
def test_fedadam_server_with_fedprox_clients(ray_cluster, tmp_path):
    base = small_scenario()
    s = replace(base, strategy=StrategyConfig(name="fedadam", options={"eta": 1e-2}),
                objective=ObjectiveConfig(name="fedprox", options={"mu": 0.1}),
                eval=replace(base.eval, every=0, at_start=False))
    summary = Simulation(s, tmp_path).execute()
    assert summary.final_eval["n"] == 24
    assert all(h["aggregate"]["num_results"] == 3 for h in read_history(tmp_path / "history.jsonl"))
