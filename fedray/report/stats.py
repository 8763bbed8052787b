"""Means with 95 % confidence intervals over seeds, and paired differences, in plain Python.

The interval is Student's t-interval: mean ± t(1 − (1 − level)/2; n − 1) · s/√n with s the sample standard
deviation (n − 1 in the denominator). It assumes the values are independent draws around the mean
(seeds are); with n = 1 there is no interval (NaN bounds), never a made-up one.

The t quantile is computed here rather than imported from scipy (present only through scikit-learn, not a
declared dependency): for an integer number of degrees of freedom ν the two-sided probability
P(|T| ≤ t) has a closed form as a finite series in θ = atan(t/√ν) (Abramowitz & Stegun 26.7.3-4), which
:func:`t_quantile` inverts by bisection. The tests check it against tabulated values and, where scipy is
installed, against ``scipy.stats.t``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from fedray.errors import FedRayError


@dataclass(frozen=True)
class Interval:
    """A sample mean with its confidence interval (``low``/``high`` NaN when n < 2)."""

    mean: float
    low: float
    high: float
    n: int
    std: float  # sample standard deviation (NaN when n < 2)
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def format(self, digits: int = 3, signed: bool = False) -> str:
        """``0.512 ± 0.031`` (or ``+0.512 ...`` when ``signed``); just the mean when there is no interval."""
        sign = "+" if signed else ""
        if math.isnan(self.mean):
            return "n/a"
        text = f"{self.mean:{sign}.{digits}f}"
        return text if math.isnan(self.half_width) else f"{text} ± {self.half_width:.{digits}f}"


def two_sided_probability(t: float, df: int) -> float:
    """P(|T| ≤ t) for Student's T with integer ``df`` ≥ 1 degrees of freedom (closed form, t ≥ 0)."""
    if df < 1:
        raise FedRayError(f"a t distribution needs at least 1 degree of freedom, got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2:  # odd: (2/π)(θ + sinθ cosθ Σ_{k=0}^{(ν-3)/2} c_k cos^{2k}θ), c_0 = 1, c_k = c_{k-1}·2k/(2k+1)
        series, term = 0.0, 1.0
        for k in range((df - 1) // 2):
            series += term
            term *= cos2 * (2 * k + 2) / (2 * k + 3)
        return (2 / math.pi) * (theta + math.sin(theta) * math.cos(theta) * series)
    series, term = 0.0, 1.0  # even: sinθ Σ_{k=0}^{ν/2-1} c_k cos^{2k}θ, c_0 = 1, c_k = c_{k-1}·(2k-1)/(2k)
    for k in range(df // 2):
        series += term
        term *= cos2 * (2 * k + 1) / (2 * k + 2)
    return math.sin(theta) * series


def t_quantile(df: int, level: float = 0.95) -> float:
    """The t with P(|T| ≤ t) = ``level``: the multiplier of s/√n in a two-sided ``level`` interval."""
    if not 0.0 < level < 1.0:
        raise FedRayError(f"a confidence level is between 0 and 1 (exclusive), got {level}")
    low, high = 0.0, 1.0
    while two_sided_probability(high, df) < level:  # bracket, then bisect to float precision
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if two_sided_probability(middle, df) < level:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * high:
            break
    return (low + high) / 2


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and t-interval of ``values`` (NaNs dropped: a run without a value is not a zero)."""
    kept = [float(v) for v in values if not math.isnan(float(v))]
    n = len(kept)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, level)
    mean = sum(kept) / n
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, math.nan, level)
    std = math.sqrt(sum((v - mean) ** 2 for v in kept) / (n - 1))
    half = t_quantile(n - 1, level) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, std, level)


def paired_differences(higher: Mapping[Hashable, float], lower: Mapping[Hashable, float]) -> list[float]:
    """``higher[k] − lower[k]`` for every key (e.g. a seed) both hold with a value, in key order."""
    shared = [k for k in sorted(higher, key=str) if k in lower]
    pairs = [(float(higher[k]), float(lower[k])) for k in shared]
    return [a - b for a, b in pairs if not (math.isnan(a) or math.isnan(b))]


def verdict(interval: Interval) -> str:
    """The claim rule: ``reproduced`` when the interval of (claimed higher − lower) lies above 0,
    ``not reproduced`` when it lies below 0, ``inconclusive`` when it holds 0 or does not exist."""
    if interval.n < 2 or math.isnan(interval.low):
        return "inconclusive"
    if interval.low > 0:
        return "reproduced"
    if interval.high < 0:
        return "not reproduced"
    return "inconclusive"
