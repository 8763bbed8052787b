"""Central DP with fixed clipping: clipping, where the noise goes, reproducibility, the accountant."""

import math

import numpy as np
import pytest
import torch

from fedray.errors import FedRayError
from fedray.strategies import ClientResult, build_strategy
from fedray.strategies.dp import clip_update, gaussian_epsilon

F64 = torch.float64


def _state(w):
    return {"w": torch.tensor(w, dtype=F64)}


def _clients(x, updates, weights=None):
    weights = weights or [1] * len(updates)
    return [ClientResult(cid, n, {"w": x["w"] + torch.tensor(u, dtype=F64)})
            for cid, (u, n) in enumerate(zip(updates, weights))]


def test_clip_update_bounds_the_norm_over_all_tensors():
    x = {"w": torch.zeros(1, dtype=F64), "z": torch.zeros(1, 1, dtype=F64)}
    params = {"w": torch.tensor([3.0], dtype=F64), "z": torch.tensor([[4.0]], dtype=F64)}  # ‖u‖ = 5
    clipped, norm = clip_update(x, params, clip_norm=1.0)
    assert norm == 5.0
    assert clipped["w"].tolist() == pytest.approx([0.6]) and clipped["z"].tolist() == [[pytest.approx(0.8)]]
    unclipped, _ = clip_update(x, params, clip_norm=10.0)
    assert unclipped["w"].item() == 3.0 and unclipped["z"].item() == 4.0
    zero, norm = clip_update(x, x, clip_norm=1.0)
    assert norm == 0.0 and zero["w"].item() == 0.0


def test_clipped_updates_have_norm_at_most_clip():
    generator = torch.Generator().manual_seed(0)
    x = {"a": torch.zeros(5, 3, dtype=F64), "b": torch.zeros(7, dtype=F64)}
    for scale in (0.01, 1.0, 100.0):
        params = {k: torch.randn(v.shape, generator=generator, dtype=F64) * scale for k, v in x.items()}
        clipped, _ = clip_update(x, params, clip_norm=0.5)
        total = math.sqrt(sum(float((u * u).sum()) for u in clipped.values()))
        assert total <= 0.5 + 1e-12


def test_dp_fedavg_three_rounds_without_noise():
    # C = 1, σ = 0; unweighted mean of clipped updates (weights 1 and 9 are ignored)
    # r1: [3, 4] (‖·‖ 5) → [0.6, 0.8]; [0, 0.5] stays → mean [0.3, 0.65]      x₁ = [0.3, 0.65]
    # r2: [0, −2] → [0, −1]; [0.6, 0.8] (‖·‖ = 1) stays → mean [0.3, −0.1]     x₂ = [0.6, 0.55]
    # r3: [−6, 8] → [−0.6, 0.8]; [2, 0] → [1, 0] → mean [0.2, 0.4]            x₃ = [0.8, 0.95]
    strategy = build_strategy("dp", {"clip_norm": 1.0, "noise_multiplier": 0.0})
    rounds = [[[3.0, 4.0], [0.0, 0.5]], [[0.0, -2.0], [0.6, 0.8]], [[-6.0, 8.0], [2.0, 0.0]]]
    expected = [[0.3, 0.65], [0.6, 0.55], [0.8, 0.95]]
    clipped_fraction = [0.5, 0.5, 1.0]
    mean_norm = [(5 + 0.5) / 2, (2 + 1) / 2, (10 + 2) / 2]
    x = _state([0.0, 0.0])
    for server_round, updates in enumerate(rounds, start=1):
        x, metrics = strategy.aggregate_fit(server_round, x, _clients(x, updates, [1, 9]), [])
        assert x["w"].tolist() == pytest.approx(expected[server_round - 1], abs=1e-12)
        assert metrics["dp_clipped_fraction"] == clipped_fraction[server_round - 1]
        assert metrics["dp_mean_update_norm"] == pytest.approx(mean_norm[server_round - 1])
        assert metrics["dp_noise_std"] == 0.0 and metrics["dp_epsilon"] == math.inf


@pytest.mark.parametrize("inner, inner_params", [
    ("fedavg", {}),
    ("fedadam", {"eta": 0.1}),
    ("fedyogi", {"eta": 0.1, "variant": "fedmllm"}),
    ("fedavgm", {"momentum": 0.5, "variant": "fedmllm"}),
])
def test_no_noise_and_huge_clip_equals_the_wrapped_rule_unweighted(inner, inner_params):
    dp = build_strategy("dp", dict(inner=inner, inner_params=inner_params, clip_norm=1e9,
                                   noise_multiplier=0.0))
    plain = build_strategy(inner, inner_params)
    rounds = [[[1.0, 2.0], [5.0, -2.0], [0.5, 0.5]], [[5.0, 4.0], [1.0, 0.0], [0.0, 0.0]],
              [[-8.0, 0.2], [0.0, 0.0], [1.0, 1.0]]]
    x_dp = x_plain = _state([0.0, 1.0])
    for server_round, updates in enumerate(rounds, start=1):
        x_dp, _ = dp.aggregate_fit(server_round, x_dp, _clients(x_dp, updates, [1, 3, 7]), [])
        x_plain, _ = plain.aggregate_fit(server_round, x_plain, _clients(x_plain, updates), [])
        assert torch.allclose(x_dp["w"], x_plain["w"], rtol=0, atol=1e-12)


def _noisy_round(seed=0, server_round=1, sigma=1.0, inner="fedavg", inner_params=None, x=None):
    strategy = build_strategy("dp", dict(inner=inner, inner_params=inner_params or {}, clip_norm=1.0,
                                         noise_multiplier=sigma, seed=seed))
    x = x if x is not None else _state([0.0] * 8)
    new, metrics = strategy.aggregate_fit(server_round, x, _clients(x, [[0.1] * 8, [0.3] * 8]), [])
    return new["w"], metrics


def test_noise_is_reproducible_and_keyed_by_seed_and_round():
    first, metrics = _noisy_round(seed=3, server_round=2)
    assert torch.equal(first, _noisy_round(seed=3, server_round=2)[0])
    assert not torch.equal(first, _noisy_round(seed=4, server_round=2)[0])
    assert not torch.equal(first, _noisy_round(seed=3, server_round=3)[0])
    assert metrics["dp_noise_std"] == 0.5  # σ·C/K = 1·1/2


def test_noise_std_is_sigma_clip_over_k():
    # Four clients that did not move: the change is the noise alone, std σ·C/K = 2·0.5/4 = 0.25
    strategy = build_strategy("dp", {"clip_norm": 0.5, "noise_multiplier": 2.0, "seed": 1})
    x = {"w": torch.zeros(200, 200, dtype=F64)}
    still = [ClientResult(c, 1, {"w": x["w"].clone()}) for c in range(4)]
    new, metrics = strategy.aggregate_fit(1, x, still, [])
    assert metrics["dp_noise_std"] == 0.25
    assert float(new["w"].std()) == pytest.approx(0.25, rel=0.03)
    assert abs(float(new["w"].mean())) < 0.01


def test_noise_enters_the_pseudo_gradient_before_the_server_optimizer():
    # Round one of FedAvgM (v₀ = 0, server_lr 1) is x + ũ, exactly DP-FedAvg with the same noise.
    avg1, _ = _noisy_round(inner="fedavg")
    m1, _ = _noisy_round(inner="fedavgm", inner_params={"momentum": 0.9})
    assert torch.allclose(avg1, m1, atol=1e-12)
    # Round two: v = 0.9·ũ₁ + ũ₂, where x₁ + ũ₂ is what DP-FedAvg gives from x₁ in round two.
    strategy = build_strategy("dp", dict(inner="fedavgm", inner_params={"momentum": 0.9}, clip_norm=1.0,
                                         noise_multiplier=1.0))
    x0 = _state([0.0] * 8)
    x1, _ = strategy.aggregate_fit(1, x0, _clients(x0, [[0.1] * 8, [0.3] * 8]), [])
    x2, _ = strategy.aggregate_fit(2, x1, _clients(x1, [[0.1] * 8, [0.3] * 8]), [])
    avg2, _ = _noisy_round(server_round=2, x=x1)
    assert torch.allclose(x2["w"], avg2 + 0.9 * (x1["w"] - x0["w"]), atol=1e-12)


def test_epsilon_against_an_independent_rdp_conversion():
    # RDP of T Gaussian mechanisms: T·α/(2σ²). Balle et al. (2020) conversion, minimised over a fine α grid:
    #   ε = min_α T·α/(2σ²) + log((α−1)/α) − (log δ + log α)/(α−1)
    # and the classic conversion ε ≤ min_α T·α/(2σ²) + log(1/δ)/(α−1) is an upper bound.
    alphas = np.linspace(1.001, 5000.0, 500_000)
    for sigma, rounds in [(1.0, 1), (1.0, 3), (2.0, 1), (5.0, 10), (10.0, 1)]:
        rdp = rounds * alphas / (2 * sigma**2)
        balle = float((rdp + np.log((alphas - 1) / alphas)
                       - (np.log(1e-5) + np.log(alphas)) / (alphas - 1)).min())
        classic = float((rdp + np.log(1e5) / (alphas - 1)).min())
        epsilon = gaussian_epsilon(sigma, rounds, 1e-5)
        assert balle - 1e-6 <= epsilon <= balle * 1.005  # the grid and the accountant's orders differ
        assert epsilon < classic
    assert gaussian_epsilon(1.0, 1, 1e-5) == pytest.approx(4.7285, abs=1e-3)


def test_epsilon_decreases_with_sigma_and_grows_with_rounds():
    by_sigma = [gaussian_epsilon(s, 10, 1e-5) for s in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert all(a > b for a, b in zip(by_sigma, by_sigma[1:]))
    by_rounds = [gaussian_epsilon(1.0, t, 1e-5) for t in (1, 2, 5, 20, 100)]
    assert all(a < b for a, b in zip(by_rounds, by_rounds[1:]))
    assert gaussian_epsilon(1.0, 0, 1e-5) == 0.0 and gaussian_epsilon(0.0, 3, 1e-5) == math.inf
    assert gaussian_epsilon(1.0, 5, 1e-3) < gaussian_epsilon(1.0, 5, 1e-7)


def test_metrics_report_epsilon_over_the_rounds_run():
    strategy = build_strategy("dp", {"noise_multiplier": 1.5, "delta": 1e-6})
    x = _state([0.0, 0.0])
    for server_round in (1, 2, 3):
        x, metrics = strategy.aggregate_fit(server_round, x, _clients(x, [[1.0, 0.0], [0.0, 1.0]]), [])
        assert metrics["dp_epsilon"] == gaussian_epsilon(1.5, server_round, 1e-6)
        assert metrics["dp_delta"] == 1e-6 and metrics["num_results"] == 2


def test_rejected_client_does_not_count_towards_k():
    strategy = build_strategy("dp", {"clip_norm": 1.0, "noise_multiplier": 1.0})
    x = _state([0.0, 0.0])
    results = _clients(x, [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    results[2].params["w"][0] = float("nan")
    new, metrics = strategy.aggregate_fit(1, x, results, [])
    assert metrics["num_rejected"] == 1 and metrics["dp_noise_std"] == 0.5
    assert bool(torch.isfinite(new["w"]).all())


@pytest.mark.parametrize("params, match", [
    ({"inner": "krum"}, "strategy.inner: got 'krum' .*expected one of 'fedavg', 'fedavgm', 'fedadagrad', "
                        "'fedadam', 'fedyogi'"),
    ({"inner": "dp"}, "strategy.inner: got 'dp'"),
    ({"inner": "fedadam", "inner_params": {"momentum": 0.9}},
     "strategy.inner_params.momentum: strategy 'fedadam' has no parameter 'momentum' "
     r"\(a parameter of fedavgm\); it accepts: eta, beta1"),
    ({"inner": "fedadam", "inner_params": {"eta": -1.0}}, "inner_params.eta: got -1.0, must be > 0"),
    ({"inner_params": [1, 2]}, "strategy.inner_params: got a list, expected a mapping"),
    ({"clip_norm": 0.0}, "strategy.clip_norm: got 0.0, must be > 0"),
    ({"clip_norm": float("inf")}, "clip_norm: got inf, must be a finite number"),
    ({"noise_multiplier": -1.0}, "strategy.noise_multiplier: got -1.0, must be >= 0"),
    ({"delta": 1.0}, "strategy.delta: got 1.0, must be < 1"),
    ({"seed": -3}, "strategy.seed: got -3, must be >= 0"),
])
def test_bad_parameters_are_clear_errors(params, match):
    with pytest.raises(FedRayError, match=match):
        build_strategy("dp", params)
