"""SCAFFOLD's server half: known values over three rounds, pairing with its client half, state."""

from __future__ import annotations

import pytest
import torch

from fedray.client.objectives import FedProx, LocalObjective, ScaffoldObjective
from fedray.errors import FedRayError
from fedray.strategies import ClientResult, build_strategy


def _result(cid: int, n: int, x: float, dc: float) -> ClientResult:
    return ClientResult(client_id=cid, num_examples=n, params={"w": torch.tensor([x, 2 * x])},
                        extras={"control_delta": {"w": torch.tensor([dc, -dc])}})


def test_three_rounds_known_values():
    s = build_strategy("scaffold", {"server_lr": 0.5}, num_clients=4)
    x = {"w": torch.tensor([0.0, 0.0])}
    objective = s.configure_fit(1, [0, 1], x, LocalObjective())
    assert isinstance(objective, ScaffoldObjective)
    assert torch.equal(objective.server_variate["w"], torch.zeros(2))
    c = torch.zeros(2)
    for server_round, (a, b) in enumerate([(1.0, 3.0), (2.0, 2.0), (-1.0, 5.0)], start=1):
        # x ← x + 0.5·unweighted mean(y − x) (sample counts ignored);  c ← c + (Δc_a + Δc_b)/4
        expected_x = x["w"] + 0.5 * ((torch.tensor([a, 2 * a]) + torch.tensor([b, 2 * b])) / 2 - x["w"])
        c = c + (torch.tensor([a, -a]) * 0.1 + torch.tensor([b, -b]) * 0.1) / 4
        results = [_result(0, 10, a, 0.1 * a), _result(1, 90, b, 0.1 * b)]
        x, metrics = s.aggregate_fit(server_round, x, results, [])
        assert torch.allclose(x["w"], expected_x) and torch.allclose(s.control["w"], c)
        assert metrics["num_results"] == 2.0
    assert torch.allclose(s.configure_fit(4, [0], x, None).server_variate["w"], c)


def test_pairs_its_own_objective_only():
    s = build_strategy("scaffold")
    with pytest.raises(FedRayError, match="brings its own client objective.*FedProx"):
        s.configure_fit(1, [0], {"w": torch.zeros(1)}, FedProx(mu=0.1))
    with pytest.raises(FedRayError, match="returned no control_delta"):
        s.aggregate_fit(1, {"w": torch.zeros(2)},
                        [ClientResult(client_id=0, num_examples=1, params={"w": torch.ones(2)})], [])


def test_client_variate_reaches_each_client():
    objective = ScaffoldObjective(server_variate={"w": torch.ones(1)})
    mine = objective.for_client({"control_variate": {"w": torch.full((1,), 3.0)}})
    assert float(mine.client_variate["w"]) == 3.0 and objective.for_client(None).client_variate is None


def test_state_round_trip():
    a = build_strategy("scaffold", num_clients=3)
    x = {"w": torch.zeros(2)}
    a.configure_fit(1, [0], x, None)
    x, _ = a.aggregate_fit(1, x, [_result(0, 1, 1.0, 0.3)], [])
    b = build_strategy("scaffold", num_clients=3)
    b.load_state_dict(a.state_dict())
    xa, _ = a.aggregate_fit(2, x, [_result(1, 1, 2.0, 0.6)], [])
    xb, _ = b.aggregate_fit(2, x, [_result(1, 1, 2.0, 0.6)], [])
    assert torch.equal(xa["w"], xb["w"]) and torch.equal(a.control["w"], b.control["w"])
