"""Plateau figures and table of the evidence report: the plateau rule, curves over seeds, and
``fedray evidence report --train-loss`` on run directories written by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from fedray.cli.main import main as cli_main
from fedray.report.evidence_curves import (
    mean_curve,
    plateau_round,
    plateau_table,
    reported_if_stopped_at,
    stopping_table,
    train_loss_curve,
)
from fedray.report.evidence_grid import get_grid
from fedray.report.tables import load_run


def test_the_plateau_is_the_first_round_nothing_later_beats_by_more_than_tolerance():
    rounds = [5, 10, 15, 20, 25, 30]
    assert plateau_round(rounds, [0.25, 0.40, 0.70, 0.71, 0.70, 0.72], tolerance=0.02) == 15
    assert plateau_round(rounds, [0.25, 0.40, 0.70, 0.71, 0.70, 0.80], tolerance=0.02) == 30  # still rising
    assert plateau_round(rounds, [0.5, 0.4, 0.45, 0.5, 0.49, 0.51], tolerance=0.02) == 5  # flat
    assert plateau_round([5, 10], [math.nan, 0.3]) == 10
    assert plateau_round([], []) is None


def test_mean_curve_averages_over_seeds_where_each_has_a_value():
    rounds, mean, std = mean_curve([[(1, 1.0), (2, 3.0)], [(1, 3.0)]])
    assert list(rounds) == [1, 2]
    assert np.allclose(mean, [2.0, 3.0]) and np.allclose(std, [1.0, 0.0])


def _fake_run(root: Path, scenario: str, method: str, seed: int, accuracies: list[float]) -> Path:
    run = root / scenario / method / f"seed{seed}"
    run.mkdir(parents=True)
    mode = method if method in ("local", "centralized") else "federated"
    (run / "config.yaml").write_text(yaml.safe_dump({
        "name": f"evidence-{scenario}", "mode": mode, "seed": seed, "strategy": {"name": "fedavg"},
        "eval": {"select_metric": "accuracy"}}))
    records = []
    for r in range(1, 5 * len(accuracies) + 1):
        record = {"round": r, "train_loss": 2.0 / r + seed * 0.01}
        if r % 5 == 0:
            acc = accuracies[r // 5 - 1]
            record.update(eval={"accuracy": acc}, validation={"accuracy": acc})
        records.append(record)
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_train_loss_curve_reads_every_round_of_the_history(tmp_path):
    run = load_run(_fake_run(tmp_path, "aligned-a0.5", "fedavg", 1, [0.3, 0.6]))
    curve = train_loss_curve(run)
    assert [r for r, _ in curve] == list(range(1, 11))
    assert curve[0][1] == 2.01 and run.curve == [(5, 0.3), (10, 0.6)]


def test_plateau_table_reports_each_method_s_seed_mean_curve(tmp_path):
    _fake_run(tmp_path, "aligned-a0.5", "fedavg", 0, [0.3, 0.6, 0.7, 0.7])
    _fake_run(tmp_path, "aligned-a0.5", "fedavg", 1, [0.3, 0.8, 0.9, 0.9])
    _fake_run(tmp_path, "aligned-a0.5", "local", 0, [0.2, 0.3, 0.4, 0.5])
    runs = [load_run(p) for p in sorted(tmp_path.glob("*/*/seed*"))]
    lines = plateau_table(runs)
    assert "| evidence-aligned-a0.5 | fedavg (2) | 15 | 0.800 | 0.800 (15) | 0.800 (20) | 0.105 |" in lines
    assert "| evidence-aligned-a0.5 | local (1) | 20 | 0.500 | 0.500 (20) | 0.500 (20) | 0.100 |" in lines


def test_a_shorter_grid_reports_the_validation_pick_among_its_own_rounds(tmp_path):
    run = load_run(_fake_run(tmp_path, "aligned-a0.5", "fedavg", 0, [0.3, 0.6, 0.5, 0.7]))
    assert [reported_if_stopped_at(run, r) for r in (4, 5, 10, 15, 20)] == [
        pytest.approx(math.nan, nan_ok=True), 0.3, 0.6, 0.6, 0.7]
    lines = stopping_table([run], cutoffs=(10, 20, 30))
    assert lines[0] == "| scenario | method (seeds) | R = 10 | R = 20 |"
    assert lines[2] == "| evidence-aligned-a0.5 | fedavg (1) | 0.600 | 0.700 |"


def test_report_with_train_loss_writes_the_plateau_figures_and_table(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        _fake_run(root, "missing-b0.5", "fedavg", seed, [0.25, 0.5, 0.6])
    doc = tmp_path / "docs" / "results.md"
    assert cli_main(["evidence", "report", str(root), "--write", str(doc), "--section", "plateau",
                     "--train-loss"]) == 0
    text = doc.read_text()
    assert "### Plateau: where each seed-mean test curve stops gaining" in text
    assert "| evidence-missing-b0.5 | fedavg (2) | 15 | 0.600 |" in text
    assert "| evidence-missing-b0.5 | fedavg (2) | 0.500 |" in text  # R = 10
    figure = doc.parent / "results" / "plateau-evidence-missing-b0.5.png"
    assert figure.stat().st_size > 0 and "](results/plateau-evidence-missing-b0.5.png)" in text


def test_the_plateau_grid_runs_the_curves_the_rounds_are_read_from():
    grid = get_grid("plateau")
    cells = grid.subset(seeds="0").cells()
    assert [(c.scenario, c.method) for c in cells] == [
        ("aligned-a0.5", "fedavg"), ("missing-b0.5", "fedavg"),
        ("aligned-a0.5", "local"), ("aligned-a0.5", "centralized")]
    assert {"federation.rounds=60", "eval.every=5"} <= set(grid.budget)
    assert len(grid.seeds) == 3
