"""FedExP, the worked example of docs/architecture.md: known values, parameters at load, registration."""

import pytest
import torch

from fedray.config import scenario_from_dict
from fedray.errors import ConfigError
from fedray.strategies import STRATEGIES, ClientResult, build_strategy


def _results(deltas, x):
    return [ClientResult(cid, n, {"w": x + torch.tensor(d, dtype=torch.float64)})
            for cid, (n, d) in enumerate(deltas)]


def test_extrapolates_when_clients_disagree():
    # Δ₁ = [2, 0], Δ₂ = [0, 2]: Δ̄ = [1, 1], Σ‖Δ_i‖² = 8, ‖Δ̄‖² = 2
    # η_g = max(1, 8 / (2·2·(2 + 0.001))) = 8 / 8.004 ≈ 0.9995 → 1 (FedAvg step)
    x = torch.tensor([0.0, 0.0], dtype=torch.float64)
    results = _results([(1, [2, 0]), (9, [0, 2])], x)
    new, metrics = build_strategy("fedexp").aggregate_fit(1, {"w": x}, results, [])
    assert metrics["server_lr"] == 1.0  # unweighted: the 9 examples of client 2 do not count
    assert new["w"].tolist() == pytest.approx([1.0, 1.0])
    # Δ₁ = [2, 0], Δ₂ = [−2, 0.2]: Δ̄ = [0, 0.1], Σ‖Δ_i‖² = 4 + 4.04 = 8.04, ‖Δ̄‖² = 0.01
    # η_g = 8.04 / (4 · 0.011) = 182.7… → capped at max_step 5
    strategy = build_strategy("fedexp", {"max_step": 5.0})
    new, metrics = strategy.aggregate_fit(1, {"w": x}, _results([(1, [2, 0]), (1, [-2, 0.2])], x), [])
    assert metrics["server_lr"] == 5.0
    assert new["w"].tolist() == pytest.approx([0.0, 0.5])
    strategy = build_strategy("fedexp", {"max_step": 1000.0, "epsilon": 0.01})
    _, metrics = strategy.aggregate_fit(1, {"w": x}, _results([(1, [2, 0]), (1, [-2, 0.2])], x), [])
    assert metrics["server_lr"] == pytest.approx(8.04 / (4 * 0.02))


def test_is_registered_by_its_file_alone_and_checked_at_load():
    assert "fedexp" in STRATEGIES and not STRATEGIES.get("fedexp").linear
    with pytest.raises(ConfigError) as info:
        scenario_from_dict({"strategy": {"name": "fedexp", "epsilon": 0, "max_step": 0.5}})
    assert info.value.problems == ["strategy.epsilon: got 0.0, must be > 0",
                                   "strategy.max_step: got 0.5, must be >= 1"]
