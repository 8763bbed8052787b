"""The evidence report: cells with intervals over seeds, paired differences, and the paper's claims checked.

Input: run directories (any tree; :func:`fedray.report.tables.load_run` reads each), one value per run —
the test ``eval.select_metric`` at the round the validation split picked. A run is an observation
(scenario, method, seed); runs of the same scenario and method with different seeds form a *cell*.

- **Cells**: mean ± 95 % t-interval over seeds (:mod:`fedray.report.stats`).
- **Paired differences**: method − reference method on the same scenario and seed, mean ± interval.
- **Claims**: each finding of the paper is a set of pairs (claimed higher run, claimed lower run) that
  share a seed; all its pairs' differences give one mean and t-interval, and the verdict follows the rule
  of :func:`fedray.report.stats.verdict`: *reproduced* when the interval lies above 0, *not reproduced*
  when below, *inconclusive* when it holds 0 (or there are fewer than 2 pairs). The pairs are treated as
  independent; the cells differ systematically, so the interval is about the average over *these* cells.

Scenario names follow ``scenarios/grid.py`` (``<prefix>-<condition>[-aug]``, condition ``aligned-a0.5``,
``missing-b0.5``, ``cross-k5``, ``hybrid-q0.4``); the heterogeneous conditions partition with α = 0.5, so
their aligned counterpart is ``aligned-a0.5``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from fedray.report.stats import Interval, mean_interval, verdict

BASELINES = ("zero_shot", "local", "centralized")
ADAPTIVE = "+adaptive_prox"
_CONDITION = re.compile(r"^(?P<prefix>.*?)-?(?P<kind>aligned|missing|cross|hybrid)-(?P<level>[a-z][\d.]+)"
                        r"(?P<aug>-aug)?$")


@dataclass(frozen=True)
class Observation:
    """One run's headline value."""

    scenario: str
    method: str
    seed: int
    value: float


@dataclass(frozen=True)
class Pair:
    """Two runs on the same seed that a claim compares: ``higher`` is claimed to beat ``lower``."""

    cell: str  # what the pair belongs to, e.g. "evidence-missing-b0.5 · fedavg"
    seed: int
    higher: float
    lower: float

    @property
    def difference(self) -> float:
        return self.higher - self.lower


@dataclass(frozen=True)
class Claim:
    """A paper finding as a rule that picks pairs from the observations."""

    key: str
    statement: str
    pairs: Callable[[Observations], Iterator[Pair]]


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    interval: Interval  # of the pairs' differences
    cells_positive: int
    cells: int
    verdict: str

    def sentence(self) -> str:
        if self.interval.n == 0:
            return f"{self.claim.statement}: no pairs in these runs"
        ci = (f"95 % CI [{self.interval.low:+.3f}, {self.interval.high:+.3f}]" if self.interval.n > 1
              else "no interval (1 pair)")
        pairs = f"{self.interval.n} pair" + ("s" if self.interval.n != 1 else "")
        return (f"{self.claim.statement} in {self.cells_positive} of {self.cells} cells, mean "
                f"{self.interval.mean:+.3f}, {ci}, {pairs}")


class Observations:
    """Observations indexed by (scenario, method) → {seed: value}."""

    def __init__(self, observations: Iterable[Observation]) -> None:
        self.cells: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        for o in observations:
            self.cells[(o.scenario, o.method)][o.seed] = o.value

    @property
    def scenarios(self) -> list[str]:
        return sorted({s for s, _ in self.cells}, key=_scenario_order)

    @property
    def methods(self) -> list[str]:
        found = {m for _, m in self.cells}
        return [m for m in BASELINES if m in found] + sorted(found - set(BASELINES))

    @property
    def federated(self) -> list[str]:
        return [m for m in self.methods if m not in BASELINES]

    def seeds(self, scenario: str, method: str) -> dict[int, float]:
        return self.cells.get((scenario, method), {})

    def paired(self, cell: str, higher: tuple[str, str], lower: tuple[str, str]) -> Iterator[Pair]:
        """Pairs of the two cells' runs that share a seed."""
        a, b = self.seeds(*higher), self.seeds(*lower)
        for seed in sorted(set(a) & set(b)):
            yield Pair(cell, seed, a[seed], b[seed])


def condition(scenario: str) -> dict[str, str] | None:
    """``evidence-missing-b0.5-aug`` → prefix, kind (missing), level (b0.5), aug ("-aug" or "")."""
    match = _CONDITION.match(scenario)
    return None if match is None else {**match.groupdict(), "aug": match["aug"] or ""}


def _scenario_order(scenario: str) -> tuple:
    c = condition(scenario)
    kinds = ("aligned", "missing", "cross", "hybrid")
    return (0, kinds.index(c["kind"]), c["level"], c["aug"]) if c else (1, scenario, "", "")


def aligned_counterpart(scenario: str) -> str | None:
    """The aligned scenario with the same prefix, α = 0.5 and prompt as a heterogeneous one."""
    c = condition(scenario)
    if c is None or c["kind"] == "aligned":
        return None
    prefix = f"{c['prefix']}-" if c["prefix"] else ""
    return f"{prefix}aligned-a0.5{c['aug']}"


# -- the claims ---------------------------------------------------------------------------------------
def _federated_vs(baseline: str, federated_higher: bool) -> Callable[[Observations], Iterator[Pair]]:
    def pairs(obs: Observations) -> Iterator[Pair]:
        for scenario in obs.scenarios:
            for method in obs.federated:
                fed, base = (scenario, method), (scenario, baseline)
                higher, lower = (fed, base) if federated_higher else (base, fed)
                yield from obs.paired(f"{scenario} · {method}", higher, lower)
    return pairs


def _aligned_beats(kind: str) -> Callable[[Observations], Iterator[Pair]]:
    def pairs(obs: Observations) -> Iterator[Pair]:
        for scenario in obs.scenarios:
            c, aligned = condition(scenario), aligned_counterpart(scenario)
            if c is None or c["kind"] != kind:
                continue
            for method in obs.federated:
                yield from obs.paired(f"{scenario} · {method}", (aligned, method), (scenario, method))
    return pairs


def _augmented_prompt(obs: Observations) -> Iterator[Pair]:
    for scenario in obs.scenarios:
        c = condition(scenario)
        if c is None or c["kind"] == "aligned" or c["aug"]:
            continue
        for method in obs.federated:
            yield from obs.paired(f"{scenario} · {method}", (f"{scenario}-aug", method), (scenario, method))


def _adaptive_regularization(obs: Observations) -> Iterator[Pair]:
    for scenario in obs.scenarios:
        c = condition(scenario)
        if c is None or c["kind"] == "aligned":
            continue
        for method in obs.federated:
            if not method.endswith(ADAPTIVE):
                continue
            plain = method[: -len(ADAPTIVE)]
            without = plain if obs.seeds(scenario, plain) else "fedavg"
            yield from obs.paired(f"{scenario} · {method} vs {without}", (scenario, method),
                                  (scenario, without))


CLAIMS: tuple[Claim, ...] = (
    Claim("federated>local", "federated > local-only", _federated_vs("local", True)),
    Claim("federated>zero_shot", "federated > zero-shot", _federated_vs("zero_shot", True)),
    Claim("centralized>=federated", "centralized ≥ federated (upper bound)",
          _federated_vs("centralized", False)),
    Claim("aligned>missing", "aligned > modality missing", _aligned_beats("missing")),
    Claim("aligned>cross", "aligned > cross-modal", _aligned_beats("cross")),
    Claim("aligned>hybrid", "aligned > hybrid", _aligned_beats("hybrid")),
    Claim("augmented>plain", "augmented prompt > plain prompt under heterogeneity", _augmented_prompt),
    Claim("adaptive>without", "adaptive regularization > without it under heterogeneity "
          "(vs the same method without it, else FedAvg)", _adaptive_regularization),
)


def check_claim(claim: Claim, obs: Observations) -> ClaimResult:
    """Every pair of ``claim`` over ``obs``, their mean difference and interval, and the verdict."""
    pairs = list(claim.pairs(obs))
    by_cell: dict[str, list[float]] = defaultdict(list)
    for pair in pairs:
        by_cell[pair.cell].append(pair.difference)
    interval = mean_interval([p.difference for p in pairs])
    positive = sum(1 for diffs in by_cell.values() if sum(diffs) / len(diffs) > 0)
    return ClaimResult(claim, interval, positive, len(by_cell), verdict(interval))


def check_claims(obs: Observations, claims: Sequence[Claim] = CLAIMS) -> list[ClaimResult]:
    return [check_claim(claim, obs) for claim in claims]


# -- tables ---------------------------------------------------------------------------------------------
def cell_table(obs: Observations) -> list[str]:
    """Markdown: scenarios × methods, ``mean ± half-width (n)`` over seeds."""
    methods = obs.methods
    lines = ["| scenario | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for scenario in obs.scenarios:
        row = []
        for method in methods:
            seeds = obs.seeds(scenario, method)
            row.append(f"{mean_interval(list(seeds.values())).format()} ({len(seeds)})" if seeds else "-")
        lines.append(f"| {scenario} | " + " | ".join(row) + " |")
    return lines


def difference_table(obs: Observations, reference: str) -> list[str]:
    """Markdown: scenarios × methods, method − ``reference`` on the same seeds, mean ± half-width (n)."""
    methods = [m for m in obs.methods if m != reference]
    lines = ["| scenario | " + " | ".join(f"{m} − {reference}" for m in methods) + " |",
             "|---" * (len(methods) + 1) + "|"]
    for scenario in obs.scenarios:
        row = []
        for method in methods:
            diffs = [p.difference for p in obs.paired("", (scenario, method), (scenario, reference))]
            row.append(f"{mean_interval(diffs).format(signed=True)} ({len(diffs)})" if diffs else "-")
        lines.append(f"| {scenario} | " + " | ".join(row) + " |")
    return lines


def claims_table(results: Sequence[ClaimResult]) -> list[str]:
    lines = ["| claim | verdict | paired figure |", "|---|---|---|"]
    lines += [f"| {r.claim.statement} | **{r.verdict}** | {r.sentence()} |" for r in results]
    return lines


def evidence_markdown(obs: Observations, metric: str, reference: str = "local") -> str:
    """The whole report: cells, paired differences against ``reference``, claims with the rule."""
    parts = [f"### Cells: test {metric}, mean ± 95 % t-interval half-width over seeds (runs)", "",
             *cell_table(obs), "",
             f"### Paired differences against {reference} (same scenario and seed)", "",
             *difference_table(obs, reference), "",
             "### The paper's findings", "",
             "Rule: each finding is a set of pairs of runs sharing a seed (claimed higher − claimed lower); "
             "**reproduced** when the 95 % t-interval of the pairs' mean difference lies above 0, **not "
             "reproduced** when it lies below 0, **inconclusive** when it contains 0 or has < 2 pairs. "
             "A cell counts as positive when its mean difference is > 0.", "",
             *claims_table(check_claims(obs)), ""]
    return "\n".join(parts)
