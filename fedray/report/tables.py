"""Tables from run directories: the paper table (methods × scenarios), communication and fairness.

A run directory is any directory holding ``config.yaml`` and ``history.jsonl`` (``summary.json`` may be
missing: a sweep's scheduler kills the trials it stops early). Everything is read from those files:

- **method**: the run mode for baselines (``zero_shot``, ``local``, ``centralized``); for federated runs
  the strategy name, with ``-<variant>`` when the strategy's variant is not ``standard``
  (``fedadagrad-fedmllm``) and ``+<objective>`` when the client objective is not ``plain``
  (``fedavg+fedprox``);
- **setting**: within a (method, scenario) cell, every scenario field that differs among its runs other
  than name and seed (a sweep's searched values: ``train.lr=0.001, lora.rank=4``); rows are per method
  *and* setting, so different configurations are never averaged (:mod:`fedray.report.settings`);
- **scenario**: the scenario's ``name`` with the parts naming the method or the seed removed
  (``offline-aligned-a0.5-fedadam-seed1`` → ``offline-aligned-a0.5``);
- **value**: the test value of ``eval.select_metric`` at the round the validation split picked (the first
  best, as the engine picks it), or at the last evaluated round when there is no validation split;
- **communication**: the adapter bytes of the history, and 0 for the modes that send nothing (``local``,
  ``centralized``, ``zero_shot``; older local and centralized runs recorded the simulation's hand-offs to
  actors);
- **protocol values**: at that same round, each evaluation protocol's headline metrics (strict
  ``accuracy``, ``macro_f1``, ``auc`` beside fedmllm's ``fedmllm_accuracy``, ``fedmllm_f1``,
  ``fedmllm_auc``), for the table that sets the two protocols side by side.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import yaml

from fedray.engine.history import read_history
from fedray.engine.modes import RUN_MODES
from fedray.errors import FedRayError
from fedray.report.settings import setting_labels

_SEED_PART = re.compile(r"^(seed|s)\d+$", re.IGNORECASE)
#: Each strict headline metric with its fedmllm-protocol counterpart (see fedray.client.protocols).
PROTOCOL_PAIRS: tuple[tuple[str, str], ...] = (
    ("accuracy", "fedmllm_accuracy"), ("macro_f1", "fedmllm_f1"), ("auc", "fedmllm_auc"))


@dataclass
class RunInfo:
    """What the report needs from one run directory."""

    path: Path
    name: str
    method: str
    scenario: str
    seed: int
    metric: str
    value: float
    best_round: int | None
    rounds: int
    mib_sent: float
    curve: list[tuple[int, float]] = field(default_factory=list)  # (server_round, test metric)
    client_values: dict[str, float] = field(default_factory=dict)  # last per-client evaluation
    protocol_values: dict[str, float] = field(default_factory=dict)  # PROTOCOL_PAIRS keys at that round
    config: dict[str, Any] = field(default_factory=dict)  # the run's config.yaml


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories at or below ``paths`` (sweep directories are searched recursively)."""
    found: set[Path] = set()
    for root in map(Path, paths):
        if not root.exists():
            raise FedRayError(f"{root} does not exist; give run directories or directories holding them")
        if root.is_file():
            root = root.parent
        candidates = [root] if (root / "history.jsonl").exists() else []
        candidates += [p.parent for p in root.rglob("history.jsonl")]
        found.update(c.resolve() for c in candidates if (c / "config.yaml").exists())
    return sorted(found)


def method_of(config: dict[str, Any]) -> str:
    """``mode`` for baselines, else the strategy (``+objective`` when not plain)."""
    mode = config.get("mode", "federated")
    if mode != "federated":
        return mode
    strategy_cfg = config.get("strategy") or {}
    strategy = strategy_cfg.get("name", "fedavg")
    variant = strategy_cfg.get("variant", (strategy_cfg.get("options") or {}).get("variant", "standard"))
    if variant != "standard":
        strategy = f"{strategy}-{variant}"
    objective = (config.get("objective") or {}).get("name", "plain")
    return strategy if objective == "plain" else f"{strategy}+{objective}"


def scenario_of(config: dict[str, Any]) -> str:
    """The scenario name without the parts that name the method, the mode or the seed."""
    name = str(config.get("name", "scenario"))
    drop = {str(config.get("mode", "")), method_of(config),
            str((config.get("strategy") or {}).get("name", "")),
            str((config.get("objective") or {}).get("name", ""))}
    drop = {d.lower() for d in drop if d and d != "plain"}
    parts = re.split(r"([-_])", name)
    kept: list[str] = []
    for part in parts:
        if part in ("-", "_"):
            kept.append(part)
        elif part.lower() not in drop and not _SEED_PART.match(part):
            kept.append(part)
    label = re.sub(r"[-_]{2,}", lambda m: m.group(0)[0], "".join(kept)).strip("-_")
    return label or name


def load_run(path: str | Path, metric: str | None = None) -> RunInfo:
    """Read one run directory (``metric`` defaults to its ``eval.select_metric``)."""
    path = Path(path)
    config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    history = read_history(path / "history.jsonl")
    metric = metric or (config.get("eval") or {}).get("select_metric", "accuracy")
    evaluated = [h for h in history if h.get("eval")]
    chosen = _selected_round(evaluated, metric)
    last_clients = next((h["client_eval"] for h in reversed(evaluated) if h.get("client_eval")), {})
    return RunInfo(
        path=path, name=str(config.get("name", path.name)), method=method_of(config),
        scenario=scenario_of(config), seed=int(config.get("seed", 0)), metric=metric,
        value=_number(chosen["eval"].get(metric)) if chosen else math.nan,
        best_round=chosen["round"] if chosen else None,
        rounds=max((h["round"] for h in history), default=0),
        mib_sent=sum(h.get("bytes_sent") or 0 for h in history) / 2**20 if _communicates(config) else 0.0,
        curve=[(h["round"], _number(h["eval"].get(metric))) for h in evaluated],
        client_values={str(c): _number(m.get(metric)) for c, m in last_clients.items()},
        protocol_values={k: _number(chosen["eval"][k]) for pair in PROTOCOL_PAIRS for k in pair
                         if chosen and k in chosen["eval"]},
        config=config,
    )


def _communicates(config: dict[str, Any]) -> bool:
    mode = config.get("mode", "federated")
    return RUN_MODES.get(mode).communicates if mode in RUN_MODES else True


def _selected_round(evaluated: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    best, best_value = None, -math.inf
    for record in evaluated:
        value = _number((record.get("validation") or {}).get(metric))
        if value > best_value:  # strictly: the first best round wins, as in the engine
            best, best_value = record, value
    return best or (evaluated[-1] if evaluated else None)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean and (population) std over the finite values, and how many there were."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if not finite.size:
        return math.nan, math.nan, 0
    return float(finite.mean()), float(finite.std()), int(finite.size)


def _cell(values: Sequence[float], digits: int = 3) -> str:
    mean, std, n = mean_std(values)
    if not n:
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def row_labels(runs: Sequence[RunInfo]) -> list[str]:
    """Each run's table row: its method, with its varied settings in brackets when the runs of its
    (method, scenario) cell differ in more than the seed (see :mod:`fedray.report.settings`)."""
    settings = setting_labels([(r.method, r.scenario) for r in runs], [r.config for r in runs])
    return [f"{r.method} [{s}]" if s else r.method for r, s in zip(runs, settings)]


def _grid(runs: Sequence[RunInfo]) -> tuple[list[str], list[str], dict[tuple[str, str], list[RunInfo]]]:
    """Row labels (method and setting), scenarios, and the runs of each (row, scenario) cell."""
    groups: dict[tuple[str, str], list[RunInfo]] = defaultdict(list)
    labels = row_labels(runs)
    for run, label in zip(runs, labels):
        groups[(label, run.scenario)].append(run)
    methods = sorted(set(labels), key=_method_order)
    scenarios = sorted({r.scenario for r in runs})
    return methods, scenarios, groups


def _method_order(label: str) -> tuple[int, str]:
    baselines = ("zero_shot", "local", "centralized")
    method = label.split(" [")[0]
    return (baselines.index(method), label) if method in baselines else (len(baselines), label)


def results_table(runs: Sequence[RunInfo]) -> list[dict[str, Any]]:
    """Methods × scenarios: mean ± std of each run's value over its seeds (with the run count)."""
    methods, scenarios, groups = _grid(runs)
    rows = []
    for method in methods:
        row: dict[str, Any] = {"method": method}
        for scenario in scenarios:
            group = groups.get((method, scenario), [])
            row[scenario] = f"{_cell([r.value for r in group])} ({len(group)})" if group else "-"
        rows.append(row)
    return rows


def protocol_table(runs: Sequence[RunInfo]) -> tuple[list[dict[str, Any]], list[str]]:
    """Method × scenario rows with each protocol's headline metrics side by side (mean ± std over runs),
    and the metric columns present; empty when no run recorded a fedmllm-protocol metric."""
    present = {k for r in runs for k in r.protocol_values}
    if not any(fedmllm in present for _, fedmllm in PROTOCOL_PAIRS):
        return [], []
    columns = [k for pair in PROTOCOL_PAIRS for k in pair if k in present]
    methods, scenarios, groups = _grid(runs)
    rows = []
    for method in methods:
        for scenario in scenarios:
            group = groups.get((method, scenario), [])
            if group:
                cells = {k: _cell([r.protocol_values.get(k, math.nan) for r in group]) for k in columns}
                rows.append({"method": method, "scenario": scenario, "runs": len(group), **cells})
    return rows, columns


def communication_table(runs: Sequence[RunInfo]) -> list[dict[str, Any]]:
    """Methods × scenarios: total adapter traffic per run (MiB, mean over seeds)."""
    methods, scenarios, groups = _grid(runs)
    return [{"method": m, **{s: _cell([r.mib_sent for r in groups[(m, s)]], 1) if (m, s) in groups else "-"
                             for s in scenarios}} for m in methods]


def fairness_table(runs: Sequence[RunInfo]) -> list[dict[str, Any]]:
    """Per-client spread of the last per-client evaluation (the local baseline records one): mean, std,
    worst and best client, pooled over the seeds of each (method, scenario)."""
    rows = []
    methods, scenarios, groups = _grid([r for r in runs if r.client_values])
    for method in methods:
        for scenario in scenarios:
            values = [v for r in groups.get((method, scenario), []) for v in r.client_values.values()
                      if math.isfinite(v)]
            if values:
                rows.append({"method": method, "scenario": scenario, "clients": len(values),
                             "mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4),
                             "worst": round(min(values), 4), "best": round(max(values), 4)})
    return rows


def runs_rows(runs: Sequence[RunInfo]) -> list[dict[str, Any]]:
    """One line per run, for the CSV (``row``: the table row the run counts in)."""
    return [{"method": r.method, "row": label, "scenario": r.scenario, "seed": r.seed, "metric": r.metric,
             "value": r.value, "best_round": r.best_round, "rounds": r.rounds,
             "mib_sent": round(r.mib_sent, 3), "path": str(r.path)}
            for r, label in zip(runs, row_labels(runs))]


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub Markdown table (floats to 4 significant decimals, None as ``-``)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_show(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        if abs(value) < 1e-3 or abs(value) >= 1e4:
            return f"{value:.4g}"
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def write_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], stem: str | Path) -> str:
    """Write ``<stem>.csv`` and ``<stem>.md``; return the Markdown."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    with stem.parent.joinpath(stem.name + ".csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    text = markdown(rows, columns)
    stem.parent.joinpath(stem.name + ".md").write_text(text + "\n", encoding="utf-8")
    return text
