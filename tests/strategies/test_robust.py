"""FedMedian, FedTrimmedAvg and Krum / Multi-Krum with hand-computed values."""

import pytest
import torch

from fedray.errors import FedRayError
from fedray.strategies import ClientResult, build_strategy
from fedray.strategies.robust import krum_scores, pairwise_sq_distances


def _clients(rows, weights=None):
    """One client per (w, z) row; ids 10, 11, ...; num_examples from ``weights`` (default 1)."""
    weights = weights or [1] * len(rows)
    return [ClientResult(10 + i, n, {"w": torch.tensor([w], dtype=torch.float64),
                                     "z": torch.tensor([[z]], dtype=torch.float64)})
            for i, ((w, z), n) in enumerate(zip(rows, weights))]


GLOBAL = {"w": torch.zeros(1, dtype=torch.float64), "z": torch.zeros(1, 1, dtype=torch.float64)}
# Five clients, the last one wild. Squared distances over both tensors (w and z together):
#   d01 = 1, d02 = 4, d03 = 2, d04 = 20000, d12 = 5, d13 = 1, d14 = 19801, d23 = 2, d24 = 19604, d34 = 19602
FIVE = [(0.0, 0.0), (1.0, 0.0), (0.0, 2.0), (1.0, 1.0), (100.0, 100.0)]


def _values(state):
    return [state["w"].item(), state["z"].item()]


def test_fedmedian_three_rounds():
    strategy = build_strategy("fedmedian")
    # r1 (odd K, the wild client ignored): w ∈ {0, 1, 0, 1, 100} → 1; z ∈ {0, 0, 2, 1, 100} → 1
    new, metrics = strategy.aggregate_fit(1, GLOBAL, _clients(FIVE, [1, 1, 1, 1, 1000]), [])
    assert _values(new) == [1.0, 1.0] and metrics["num_results"] == 5
    # r2 (even K): w sorted {1, 3, 4, 10} → (3 + 4)/2 = 3.5; z sorted {−2, 0, 0, 7} → 0
    new, _ = strategy.aggregate_fit(2, new, _clients([(1, 0), (3, -2), (10, 0), (4, 7)]), [])
    assert _values(new) == [3.5, 0.0]
    # r3 (K = 2): the mean of the two, unweighted: w (2 + 5)/2 = 3.5, z (−1 + 0)/2 = −0.5
    new, _ = strategy.aggregate_fit(3, new, _clients([(2, -1), (5, 0)], [1, 99]), [])
    assert _values(new) == [3.5, -0.5]


def test_fedtrimmedavg_three_rounds():
    strategy = build_strategy("fedtrimmedavg", {"beta": 0.2})
    # r1: K = 5, ⌊0.2·5⌋ = 1 per side. w {0, 0, 1, 1, 100} → mean(0, 1, 1) = 2/3; z {0, 0, 1, 2, 100} → 1
    new, metrics = strategy.aggregate_fit(1, GLOBAL, _clients(FIVE), [])
    assert _values(new) == pytest.approx([2 / 3, 1.0], abs=1e-12) and metrics["trimmed_per_side"] == 1
    # r2: K = 4, ⌊0.8⌋ = 0: the plain unweighted mean, w (1 + 3 + 10 + 4)/4 = 4.5, z (0 − 2 + 0 + 7)/4 = 1.25
    rows = [(1, 0), (3, -2), (10, 0), (4, 7)]
    new, metrics = strategy.aggregate_fit(2, new, _clients(rows, [9, 1, 1, 1]), [])
    assert _values(new) == [4.5, 1.25] and metrics["trimmed_per_side"] == 0
    # r3: K = 10, ⌊2.0⌋ = 2 per side: w 0..9 → mean(2..7) = 4.5; z = −w → −4.5
    new, _ = strategy.aggregate_fit(3, new, _clients([(float(i), -float(i)) for i in range(10)]), [])
    assert _values(new) == [4.5, -4.5]


def test_trim_count_tolerates_float_rounding():
    # 0.29·100 is 28.999999999999996 in floats, but ⌊β·K⌋ means 29: keep the squares of 29..70
    strategy = build_strategy("fedtrimmedavg", {"beta": 0.29})
    new, metrics = strategy.aggregate_fit(1, GLOBAL, _clients([(float(i * i), 0.0) for i in range(100)]), [])
    assert metrics["trimmed_per_side"] == 29
    assert new["w"].item() == pytest.approx(sum(i * i for i in range(29, 71)) / 42, rel=1e-12)


def test_trimmed_mean_beta_zero_is_unweighted_mean():
    rows = [(1.0, 2.0), (3.0, -4.0), (8.0, 5.0)]
    strategy = build_strategy("fedtrimmedavg", {"beta": 0.0})
    new, _ = strategy.aggregate_fit(1, GLOBAL, _clients(rows, [1, 5, 50]), [])
    assert _values(new) == pytest.approx([4.0, 1.0], abs=1e-12)


def test_krum_scores_by_hand():
    dist = pairwise_sq_distances(_clients(FIVE))
    assert dist[0].tolist() == [0.0, 1.0, 4.0, 2.0, 20000.0]
    assert dist[2, 4].item() == 19604.0 and torch.equal(dist, dist.T)
    # f = 1: sum of the K − f − 2 = 2 smallest distances to the others
    assert krum_scores(_clients(FIVE), 1) == [3.0, 2.0, 6.0, 3.0, 39206.0]


def test_krum_three_rounds():
    strategy = build_strategy("krum", {"num_malicious": 1})
    # r1: client 11 (score 2) wins; its params are returned whatever the weights
    new, metrics = strategy.aggregate_fit(1, GLOBAL, _clients(FIVE, [1, 1, 1, 1, 1000]), [])
    assert _values(new) == [1.0, 0.0]
    assert metrics["krum_selected_0"] == 11 and metrics["krum_num_selected"] == 1
    assert metrics["krum_best_score"] == 2.0
    # r2: three clients on a line at 0, 1, 3 and one at 50; K − f − 2 = 1 nearest:
    #   scores 1, 1, 4, 47² → tie between 10 and 11, the lower index wins
    new, metrics = strategy.aggregate_fit(2, new, _clients([(0, 0), (1, 0), (3, 0), (50, 0)]), [])
    assert _values(new) == [0.0, 0.0] and metrics["krum_selected_0"] == 10
    # r3: w at 0, 1, 2, 3, 10, 11; K − f − 2 = 3 nearest: scores 1+4+9 = 14, 1+1+4 = 6, 6, 14,
    #   1+49+64 = 114, 1+64+81 = 146 → client 11 (w = 1) by the lower index
    rows = [(0, 0), (1, 0), (2, 0), (3, 0), (10, 0), (11, 0)]
    new, metrics = strategy.aggregate_fit(3, new, _clients(rows), [])
    assert _values(new) == [1.0, 0.0] and metrics["krum_best_score"] == 6.0


def test_multi_krum_weighted_mean_of_the_best():
    # scores [3, 2, 6, 3, 39206] → order 11, 10, 13 (tie 10/13 by index); weights 2, 1, 4:
    # w = (2·1 + 1·0 + 4·1)/7 = 6/7; z = (2·0 + 1·0 + 4·1)/7 = 4/7
    strategy = build_strategy("krum", {"num_malicious": 1, "num_to_keep": 3})
    new, metrics = strategy.aggregate_fit(1, GLOBAL, _clients(FIVE, [1, 2, 3, 4, 5]), [])
    assert _values(new) == pytest.approx([6 / 7, 4 / 7], abs=1e-12)
    assert [metrics[f"krum_selected_{i}"] for i in range(3)] == [11, 10, 13]


def test_multi_krum_keeps_at_most_k_minus_f():
    strategy = build_strategy("krum", {"num_malicious": 1, "num_to_keep": 10})
    _, metrics = strategy.aggregate_fit(1, GLOBAL, _clients(FIVE), [])
    assert metrics["krum_num_selected"] == 4 and "krum_selected_4" not in metrics


@pytest.mark.parametrize("name, params", [("fedmedian", {}), ("krum", {"num_malicious": 1}),
                                          ("fedtrimmedavg", {"beta": 0.2})])
def test_robust_rules_ignore_one_wild_client(name, params):
    honest = [(1.0, 1.0), (1.1, 0.9), (0.9, 1.1), (1.0, 1.05)]
    strategy = build_strategy(name, params)
    calm, _ = strategy.aggregate_fit(1, GLOBAL, _clients(honest + [(1.0, 1.0)]), [])
    wild, _ = build_strategy(name, params).aggregate_fit(1, GLOBAL, _clients(honest + [(1e6, -1e6)]), [])
    for value in _values(wild):
        assert 0.9 <= value <= 1.1
    assert _values(wild) == pytest.approx(_values(calm), abs=0.06)


def test_krum_needs_f_plus_3_clients():
    with pytest.raises(FedRayError, match=r"num_malicious=2 needs at least 5 usable clients.*got 4"):
        build_strategy("krum", {"num_malicious": 2}).aggregate_fit(1, GLOBAL, _clients(FIVE[:4]), [])


@pytest.mark.parametrize("name, params, match", [
    ("fedtrimmedavg", {"beta": 0.5}, "strategy.beta: got 0.5, must be < 0.5"),
    ("fedtrimmedavg", {"beta": -0.1}, "strategy.beta: got -0.1, must be >= 0"),
    ("krum", {"num_malicious": -1}, "strategy.num_malicious: got -1, must be >= 0"),
    ("krum", {"num_to_keep": 1.5}, "strategy.num_to_keep: got 1.5 .*expected an integer"),
    ("krum", {"num_malicious": True}, "strategy.num_malicious: got True .*expected an integer"),
])
def test_bad_parameters_are_clear_errors(name, params, match):
    with pytest.raises(FedRayError, match=match):
        build_strategy(name, params)
