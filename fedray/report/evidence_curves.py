"""Plateau figures for the evidence grids: test accuracy and training loss against the server round.

Whether a grid runs enough rounds is read off two curves per scenario: the test metric at each evaluated
round (what the tables report) and the clients' mean training loss of every round (which the history
holds for every round, so it shows the trend between evaluations). One PNG per scenario, two panels,
one line per method (mean over seeds, ± std band when there are several), written by ``fedray evidence
report --train-loss``.

A *plateau* here is a simple, stated rule (:func:`plateau_round`): the first evaluated round after which
the seed-mean test metric never gains more than ``tolerance`` over its best so far. It gives the rounds a
grid needs; the figure shows whether that reading is fair.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedray.engine.history import read_history
from fedray.report.plots import _pyplot, _save, _slug
from fedray.report.tables import RunInfo, _selected_round, row_labels

Curve = list[tuple[int, float]]


def train_loss_curve(run: RunInfo) -> Curve:
    """(server round, the clients' mean training loss) for every round the run's history holds."""
    history = read_history(Path(run.path) / "history.jsonl")
    return [(int(h["round"]), float(h["train_loss"])) for h in history
            if isinstance(h.get("train_loss"), (int, float)) and math.isfinite(h["train_loss"])]


def reported_if_stopped_at(run: RunInfo, rounds: int) -> float:
    """The value a grid of ``rounds`` rounds would report for this run: the test metric at the round the
    validation split picks among the evaluated rounds up to ``rounds`` (the tables' rule)."""
    history = read_history(Path(run.path) / "history.jsonl")
    chosen = _selected_round([h for h in history if h.get("eval") and h["round"] <= rounds], run.metric)
    value = (chosen or {}).get("eval", {}).get(run.metric)
    return float(value) if isinstance(value, (int, float)) else math.nan


def mean_curve(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rounds, mean and std over the curves at every round any of them has (NaN where none has)."""
    rounds = sorted({r for curve in curves for r, _ in curve})
    index = {r: i for i, r in enumerate(rounds)}
    table = np.full((len(curves), len(rounds)), np.nan)
    for row, curve in enumerate(curves):
        for r, value in curve:
            table[row, index[r]] = value
    with warnings.catch_warnings():  # a round no curve has gives NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array(rounds, dtype=int), np.nanmean(table, axis=0), np.nanstd(table, axis=0)


def plateau_round(rounds: Sequence[int], values: Sequence[float], tolerance: float = 0.02) -> int | None:
    """The first round r such that no later round beats the best value up to r by more than
    ``tolerance`` (None for an empty curve). A curve still rising at its end plateaus at its last round,
    which says only that the run was too short to tell."""
    pairs = [(r, v) for r, v in zip(rounds, values) if math.isfinite(v)]
    for i, (r, _) in enumerate(pairs):
        best = max(v for _, v in pairs[: i + 1])
        if all(v <= best + tolerance for _, v in pairs[i + 1:]):
            return int(r)
    return None


def plateau_figures(runs: Sequence[RunInfo], out: str | Path) -> list[Path]:
    """One ``plateau-<scenario>.png`` per scenario (test metric | training loss); returns the files."""
    plt = _pyplot()
    groups: dict[str, dict[str, list[RunInfo]]] = defaultdict(lambda: defaultdict(list))
    for run, label in zip(runs, row_labels(runs)):
        groups[run.scenario][label].append(run)
    written = []
    for scenario, methods in sorted(groups.items()):
        fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
        for method, group in sorted(methods.items()):
            _draw(acc_ax, [r.curve for r in group], f"{method} ({len(group)})", marker="o")
            _draw(loss_ax, [train_loss_curve(r) for r in group], f"{method} ({len(group)})", marker=None)
        metric = next(iter(methods.values()))[0].metric
        acc_ax.set(xlabel="server round", ylabel=f"test {metric}", title=f"{scenario}: test {metric}")
        loss_ax.set(xlabel="server round", ylabel="mean client training loss", yscale="log",
                    title=f"{scenario}: training loss")
        for ax in (acc_ax, loss_ax):
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        written.append(_save(plt, fig, Path(out) / f"plateau-{_slug(scenario)}.png"))
    return written


def _draw(ax, curves: Sequence[Curve], label: str, marker: str | None) -> None:
    curves = [c for c in curves if c]
    if not curves:
        return
    rounds, mean, std = mean_curve(curves)
    ax.plot(rounds, mean, marker=marker, markersize=3, label=label)
    if len(curves) > 1:
        ax.fill_between(rounds, mean - std, mean + std, alpha=0.2)


def plateau_table(runs: Sequence[RunInfo], tolerance: float = 0.02) -> list[str]:
    """Markdown lines: per scenario and method, the seed-mean curve's plateau round, its value there,
    its best and last values, and the last round's training loss."""
    groups: dict[tuple[str, str], list[RunInfo]] = defaultdict(list)
    for run, label in zip(runs, row_labels(runs)):
        groups[(run.scenario, label)].append(run)
    header = (f"| scenario | method (seeds) | plateau round (gain ≤ {tolerance:g} after) | "
              f"test {_metric(runs)} there | best (round) | last (round) | last train loss |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    for (scenario, method), group in sorted(groups.items()):
        rounds, mean, _ = mean_curve([r.curve for r in group])
        if not len(rounds):
            continue
        plateau = plateau_round(rounds, mean, tolerance)
        at = float(mean[list(rounds).index(plateau)]) if plateau is not None else math.nan
        best = int(np.nanargmax(mean))
        loss_rounds, loss, _ = mean_curve([train_loss_curve(r) for r in group])
        last_loss = f"{loss[-1]:.3f}" if len(loss_rounds) else "-"
        lines.append(f"| {scenario} | {method} ({len(group)}) | {plateau} | {at:.3f} | "
                     f"{mean[best]:.3f} ({rounds[best]}) | {mean[-1]:.3f} ({rounds[-1]}) | {last_loss} |")
    return lines


def stopping_table(runs: Sequence[RunInfo], cutoffs: Sequence[int] = (10, 20, 30, 40, 50, 60)) -> list[str]:
    """Markdown lines: per scenario and method, the seed-mean value a grid of R rounds would report
    (validation-picked round ≤ R), for each R of ``cutoffs`` the runs reach."""
    groups: dict[tuple[str, str], list[RunInfo]] = defaultdict(list)
    for run, label in zip(runs, row_labels(runs)):
        groups[(run.scenario, label)].append(run)
    reach = max((r.rounds for r in runs), default=0)
    cutoffs = [c for c in cutoffs if c <= reach]
    lines = ["| scenario | method (seeds) | " + " | ".join(f"R = {c}" for c in cutoffs) + " |",
             "|---|---|" + "---|" * len(cutoffs)]
    for (scenario, method), group in sorted(groups.items()):
        cells = []
        for cutoff in cutoffs:
            values = [reported_if_stopped_at(r, cutoff) for r in group if r.rounds >= cutoff]
            finite = [v for v in values if math.isfinite(v)]
            cells.append(f"{np.mean(finite):.3f}" if finite else "-")
        lines.append(f"| {scenario} | {method} ({len(group)}) | " + " | ".join(cells) + " |")
    return lines


def _metric(runs: Sequence[RunInfo]) -> str:
    return runs[0].metric if runs else "metric"
