"""FedAvgM: heavy-ball server momentum (standard) and the FedMLLM reference's dampened momentum."""

import pytest
import torch

from fedray.errors import FedRayError
from fedray.strategies import ClientResult, build_strategy

X0 = [0.0, 1.0]
# Per round: (num_examples, client params − current global). Sample-weighted Δ (weights 1 and 3):
#   round 1: (1·[1, 2] + 3·[5, −2]) / 4 = [4, −1]
#   round 2: (1·[5, 4] + 3·[1, 0]) / 4  = [2, 1]
#   round 3: (1·[−8, 0.2] + 3·[0, 0]) / 4 = [−2, 0.05]
ROUNDS = [
    [(1, [1.0, 2.0]), (3, [5.0, -2.0])],
    [(1, [5.0, 4.0]), (3, [1.0, 0.0])],
    [(1, [-8.0, 0.2]), (3, [0.0, 0.0])],
]


def _run(strategy, rounds=ROUNDS):
    x = {"w": torch.tensor(X0, dtype=torch.float64)}
    trajectory = []
    for server_round, clients in enumerate(rounds, start=1):
        results = [ClientResult(cid, n, {"w": x["w"] + torch.tensor(d, dtype=torch.float64)})
                   for cid, (n, d) in enumerate(clients)]
        x, metrics = strategy.aggregate_fit(server_round, x, results, failures=[])
        assert metrics["num_results"] == len(clients) and metrics["num_rejected"] == 0
        trajectory.extend(x["w"].tolist())
    return trajectory  # [x₁..., x₂..., x₃...] flattened


def test_standard_heavy_ball_three_rounds():
    # momentum 0.9, server_lr 0.5; v ← 0.9·v + Δ, x ← x + 0.5·v
    # r1: v = [4, −1]                               x = [0, 1] + [2, −0.5]       = [2, 0.5]
    # r2: v = [3.6, −0.9] + [2, 1] = [5.6, 0.1]      x = [2, 0.5] + [2.8, 0.05]   = [4.8, 0.55]
    # r3: v = [5.04, 0.09] + [−2, 0.05] = [3.04, 0.14]  x = [4.8, 0.55] + [1.52, 0.07] = [6.32, 0.62]
    got = _run(build_strategy("fedavgm", {"server_lr": 0.5, "momentum": 0.9}))
    assert got == pytest.approx([2.0, 0.5, 4.8, 0.55, 6.32, 0.62], abs=1e-12)


def test_fedmllm_dampened_momentum_three_rounds():
    # m ← Δ in round one, then m ← 0.9·m + 0.1·Δ; x ← x + m
    # r1: m = [4, −1]                                          x = [4, 0]
    # r2: m = [3.6, −0.9] + [0.2, 0.1] = [3.8, −0.8]           x = [7.8, −0.8]
    # r3: m = [3.42, −0.72] + [−0.2, 0.005] = [3.22, −0.715]   x = [11.02, −1.515]
    got = _run(build_strategy("fedavgm", {"momentum": 0.9, "variant": "fedmllm"}))
    assert got == pytest.approx([4.0, 0.0, 7.8, -0.8, 11.02, -1.515], abs=1e-12)


def test_zero_momentum_is_fedavg():
    # momentum 0, server_lr 1: x ← x + Δ, i.e. the weighted mean of the clients (x₁ = [4, 0], ...)
    got = _run(build_strategy("fedavgm", {"momentum": 0.0}))
    assert got == pytest.approx([4.0, 0.0, 6.0, 1.0, 4.0, 1.05], abs=1e-12)


def test_sample_weights_matter():
    swapped = [[(3, d1), (1, d2)] for (_, d1), (_, d2) in ROUNDS]
    # Δ₁ = (3·[1, 2] + 1·[5, −2]) / 4 = [2, 1], so x₁ = [0, 1] + [2, 1] = [2, 2] (not [4, 0])
    assert _run(build_strategy("fedavgm"), swapped)[:2] == pytest.approx([2.0, 2.0])


def test_keeps_bfloat16_dtype():
    strategy = build_strategy("fedavgm")
    x = {"w": torch.zeros(2, dtype=torch.bfloat16)}
    client = ClientResult(0, 1, {"w": torch.ones(2, dtype=torch.bfloat16)})
    new, _ = strategy.aggregate_fit(1, x, [client], [])
    assert new["w"].dtype == torch.bfloat16 and torch.equal(new["w"], torch.ones(2, dtype=torch.bfloat16))
    assert strategy.state_dict()["velocity"]["w"].dtype == torch.float32


@pytest.mark.parametrize("params, match", [
    ({"momentum": 1.0}, "strategy.momentum: got 1.0, must be < 1"),
    ({"momentum": -0.1}, "strategy.momentum: got -0.1, must be >= 0"),
    ({"server_lr": 0.0}, "strategy.server_lr: got 0.0, must be > 0"),
    ({"server_lr": "fast"}, "strategy.server_lr: got 'fast' .*expected a number"),
    ({"variant": "nesterov"}, "strategy.variant: got 'nesterov' .*expected one of 'standard', 'fedmllm'"),
    ({"variant": "fedmllm", "server_lr": 0.5}, "no server learning rate"),
])
def test_bad_parameters_are_clear_errors(params, match):
    with pytest.raises(FedRayError, match=match):
        build_strategy("fedavgm", params)
