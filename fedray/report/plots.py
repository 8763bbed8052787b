"""Figures from run directories (matplotlib, Agg backend: no display needed).

- ``curves-<scenario>.png``: the test metric against ``server_round``, one line per table row: a method
  and its varied settings (see :func:`fedray.report.tables.row_labels`; the mean over the row's runs, which
  differ only by seed, with a ± std band when there are several);
- ``clients-<scenario>.png``: per-client values of the last per-client evaluation (local baseline), one
  box per method.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from fedray.report.tables import RunInfo, row_labels


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def accuracy_curves(runs: Sequence[RunInfo], out: str | Path) -> list[Path]:
    """One PNG per scenario; returns the files written."""
    plt = _pyplot()
    by_scenario: dict[str, dict[str, list[RunInfo]]] = defaultdict(lambda: defaultdict(list))
    for run, label in zip(runs, row_labels(runs)):
        if run.curve:
            by_scenario[run.scenario][label].append(run)
    written = []
    for scenario, methods in sorted(by_scenario.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, group in sorted(methods.items()):
            rounds, mean, std = _mean_curve(group)
            ax.plot(rounds, mean, marker="o", markersize=3, label=f"{method} ({len(group)})")
            if len(group) > 1:
                ax.fill_between(rounds, mean - std, mean + std, alpha=0.2)
        metric = next(iter(methods.values()))[0].metric
        ax.set(xlabel="server round", ylabel=f"test {metric}", title=scenario)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        written.append(_save(plt, fig, Path(out) / f"curves-{_slug(scenario)}.png"))
    return written


def _mean_curve(group: Sequence[RunInfo]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over runs at every round any of them evaluated (NaN where none has a value)."""
    rounds = sorted({r for run in group for r, _ in run.curve})
    table = np.full((len(group), len(rounds)), np.nan)
    index = {r: i for i, r in enumerate(rounds)}
    for row, run in enumerate(group):
        for r, value in run.curve:
            table[row, index[r]] = value
    with warnings.catch_warnings():  # a round no run evaluated gives NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array(rounds), np.nanmean(table, axis=0), np.nanstd(table, axis=0)


def client_spread(runs: Sequence[RunInfo], out: str | Path) -> list[Path]:
    """One box plot per scenario of the per-client values; nothing when no run has them."""
    plt = _pyplot()
    by_scenario: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run, label in zip(runs, row_labels(runs)):
        values = [v for v in run.client_values.values() if math.isfinite(v)]
        if values:
            by_scenario[run.scenario][label].extend(values)
    written = []
    for scenario, methods in sorted(by_scenario.items()):
        names = sorted(methods)
        fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(names), 4))
        ax.boxplot([methods[n] for n in names])
        ax.set_xticks(range(1, len(names) + 1), names)
        metric = next(r.metric for r in runs if r.scenario == scenario)
        ax.set(ylabel=f"per-client test {metric}", title=scenario)
        ax.grid(alpha=0.3, axis="y")
        written.append(_save(plt, fig, Path(out) / f"clients-{_slug(scenario)}.png"))
    return written


def _save(plt, fig, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (creating its folder) and free it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
