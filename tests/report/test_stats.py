"""t-intervals and paired differences against tabulated and hand-computed values (and scipy when present)."""

from __future__ import annotations

import math

import pytest

from fedray.errors import FedRayError
from fedray.report.stats import (
    Interval,
    mean_interval,
    paired_differences,
    t_quantile,
    two_sided_probability,
    verdict,
)

# Two-sided 95 % critical values of Student's t (standard tables, 3 decimals).
T_TABLE_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228, 30: 2.042}


@pytest.mark.parametrize("df,expected", sorted(T_TABLE_95.items()))
def test_t_quantile_matches_the_table(df, expected):
    assert t_quantile(df) == pytest.approx(expected, abs=5e-4)


def test_t_quantile_matches_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 6, 7, 20, 51):
        for level in (0.8, 0.9, 0.95, 0.99):
            assert t_quantile(df, level) == pytest.approx(stats.t.ppf(0.5 + level / 2, df), rel=1e-9)


def test_closed_form_probability_known_points():
    assert two_sided_probability(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| ≤ 1) = 1/2
    assert two_sided_probability(0.0, 4) == 0.0
    assert two_sided_probability(math.sqrt(2) / math.sqrt(1), 2) == pytest.approx(1 / math.sqrt(2))


def test_mean_interval_hand_computed():
    # mean 2.5, s = sqrt(5/3), half-width = t(3) · s / 2
    interval = mean_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert interval.mean == 2.5 and interval.n == 4
    assert interval.low == pytest.approx(2.5 - half) and interval.high == pytest.approx(2.5 + half)
    assert interval.format() == f"2.500 ± {half:.3f}"


def test_one_value_has_no_interval_and_nans_are_dropped():
    one = mean_interval([0.7, math.nan])
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.low) and one.format() == "0.700"
    assert mean_interval([]).format() == "n/a"


def test_paired_differences_use_shared_keys_only():
    assert paired_differences({0: 0.5, 1: 0.75, 2: 0.25}, {1: 0.5, 2: 0.5, 3: 0.0}) == [0.25, -0.25]


def test_verdict_rule():
    def interval(low, high, n=3):
        return Interval((low + high) / 2, low, high, n, 0.1)

    assert verdict(interval(0.01, 0.2)) == "reproduced"
    assert verdict(interval(-0.2, -0.01)) == "not reproduced"
    assert verdict(interval(-0.1, 0.2)) == "inconclusive"
    assert verdict(mean_interval([0.3])) == "inconclusive"  # one pair: no interval, no verdict


def test_bad_arguments_raise_fedray_errors():
    with pytest.raises(FedRayError, match="degree of freedom"):
        t_quantile(0)
    with pytest.raises(FedRayError, match="between 0 and 1"):
        t_quantile(3, 1.5)
