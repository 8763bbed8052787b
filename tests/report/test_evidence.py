"""The evidence report: cells over seeds, pairs that share a seed, and each claim's verdict by the rule."""

from __future__ import annotations

import math

import pytest

from fedray.report.evidence import (
    CLAIMS,
    Observation,
    Observations,
    aligned_counterpart,
    cell_table,
    check_claim,
    condition,
    difference_table,
    evidence_markdown,
)
from fedray.report.stats import t_quantile

CLAIM = {c.key: c for c in CLAIMS}


def _obs(values: dict[tuple[str, str], list[float]]) -> Observations:
    return Observations(Observation(s, m, seed, v) for (s, m), vs in values.items()
                        for seed, v in enumerate(vs))


def test_condition_names_parse_and_pair_with_aligned_at_alpha_half():
    assert condition("evidence-missing-b0.5-aug") == {"prefix": "evidence", "kind": "missing",
                                                      "level": "b0.5", "aug": "-aug"}
    assert condition("cross-k5")["prefix"] == "" and condition("mini") is None
    assert aligned_counterpart("evidence-hybrid-q0.4-aug") == "evidence-aligned-a0.5-aug"
    assert aligned_counterpart("evidence-aligned-a5") is None


def test_federated_beats_local_pairs_on_shared_seeds_only():
    obs = _obs({("x-missing-b0.5", "fedavg"): [0.6, 0.7, 0.8, 0.9],
                ("x-missing-b0.5", "local"): [0.5, 0.5, 0.6]})  # seed 3 has no local run
    result = check_claim(CLAIM["federated>local"], obs)
    diffs = [0.1, 0.2, 0.2]
    mean = sum(diffs) / 3
    half = t_quantile(2) * math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2) / math.sqrt(3)
    assert result.interval.n == 3 and result.interval.mean == pytest.approx(mean)
    assert result.interval.low == pytest.approx(mean - half)
    assert result.verdict == "reproduced" and (result.cells_positive, result.cells) == (1, 1)
    assert "federated > local-only in 1 of 1 cells, mean +0.167, 95 % CI [" in result.sentence()


def test_a_claim_that_goes_the_other_way_is_not_reproduced_and_noise_is_inconclusive():
    worse = _obs({("a-cross-k5", "fedavg"): [0.3, 0.31, 0.29], ("a-cross-k5", "zero_shot"): [0.5, 0.52, 0.5]})
    assert check_claim(CLAIM["federated>zero_shot"], worse).verdict == "not reproduced"
    noisy = _obs({("a-cross-k5", "fedavg"): [0.3, 0.6, 0.4], ("a-cross-k5", "zero_shot"): [0.5, 0.4, 0.5]})
    assert check_claim(CLAIM["federated>zero_shot"], noisy).verdict == "inconclusive"
    assert check_claim(CLAIM["aligned>cross"], noisy).interval.n == 0  # no aligned runs: no pairs


def test_centralized_upper_bound_compares_centralized_minus_federated():
    obs = _obs({("e-aligned-a1", "fedavg"): [0.5, 0.6], ("e-aligned-a1", "centralized"): [0.7, 0.9]})
    result = check_claim(CLAIM["centralized>=federated"], obs)
    assert result.interval.mean == pytest.approx(0.25)


def test_heterogeneity_claims_pair_the_right_scenarios_and_methods():
    obs = _obs({
        ("e-aligned-a0.5", "fedavg"): [0.8, 0.8, 0.8], ("e-aligned-a0.5-aug", "fedavg"): [0.7, 0.7, 0.7],
        ("e-missing-b0.5", "fedavg"): [0.5, 0.6, 0.55], ("e-missing-b0.5-aug", "fedavg"): [0.6, 0.65, 0.7],
        ("e-missing-b0.5", "fedadagrad-fedmllm+adaptive_prox"): [0.7, 0.7, 0.72],
        ("e-missing-b0.5", "local"): [0.1, 0.1, 0.1],
    })
    aligned = check_claim(CLAIM["aligned>missing"], obs)
    # plain: 0.8 − fedavg (3 pairs); aug: 0.7 − fedavg-aug (3); adaptive has no aligned run to pair with
    assert aligned.interval.n == 6 and aligned.cells == 2
    assert aligned.interval.mean == pytest.approx((0.3 + 0.2 + 0.25 + 0.1 + 0.05 + 0.0) / 6)
    augmented = check_claim(CLAIM["augmented>plain"], obs)
    assert augmented.interval.n == 3 and augmented.interval.mean == pytest.approx(0.1)
    adaptive = check_claim(CLAIM["adaptive>without"], obs)  # no plain fedadagrad-fedmllm: vs fedavg
    assert adaptive.interval.mean == pytest.approx((0.2 + 0.1 + 0.17) / 3)
    assert "vs fedavg" in next(iter(CLAIM["adaptive>without"].pairs(obs))).cell


def test_tables_and_markdown():
    obs = _obs({("e-aligned-a0.5", "fedavg"): [0.5, 0.7], ("e-aligned-a0.5", "local"): [0.4, 0.4],
                ("e-aligned-a0.5", "zero_shot"): [0.0]})
    cells = cell_table(obs)
    assert cells[0] == "| scenario | zero_shot | local | fedavg |"
    half = t_quantile(1) * math.sqrt(0.02) / math.sqrt(2)
    assert cells[2] == f"| e-aligned-a0.5 | 0.000 (1) | 0.400 ± 0.000 (2) | 0.600 ± {half:.3f} (2) |"
    diffs = difference_table(obs, "local")
    assert diffs[2] == f"| e-aligned-a0.5 | -0.400 (1) | +0.200 ± {half:.3f} (2) |"
    text = evidence_markdown(obs, "accuracy")
    assert "federated > local-only" in text and "**inconclusive**" in text
