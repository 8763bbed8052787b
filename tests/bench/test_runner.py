"""How a case's figures are derived from a run's history and the plain loop's result (known values)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from fedray.bench.cases import CASES
from fedray.bench.proctree import TreeMemory
from fedray.bench.runner import BenchError, HistoryWatch, MeasuredRun, engine_summary, run_measured
from fedray.bench.table import MEMORY, case_row, markdown_table, report

LAUNCH = 1000.0
ROUNDS = [  # round, time_s, line written at (unix s)
    (1, {"fit": 2.0, "aggregate": 0.5}, 1010.0),
    (2, {"fit": 1.0, "aggregate": 0.2}, 1011.3),
    (3, {"fit": 1.2, "aggregate": 0.2}, 1012.8),
    (4, {"fit": 0.9, "aggregate": 0.1, "eval": 3.0}, 1017.0),
]


def _written_history(path: Path) -> HistoryWatch:
    watch = HistoryWatch(path)
    watch.poll()  # no file yet
    for server_round, time_s, written in ROUNDS:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"round": server_round, "time_s": time_s, "train_loss": 1.0 / server_round,
                                "compute_s": 1.5, "memory_mb": {"driver_peak": 400.0,
                                                                "actor_peak": 500.0 + server_round}}) + "\n")
        os.utime(path, ns=(int(written * 1e9), int(written * 1e9)))
        watch.poll()
    return watch


def test_history_lines_are_timed_and_summarised(tmp_path):
    watch = _written_history(tmp_path / "history.jsonl")
    assert watch.line_unix == {r: t for r, _, t in ROUNDS} and all(watch.exact.values())
    records = [json.loads(line) for line in watch.path.read_text().splitlines()]
    summary = engine_summary(records, watch, MeasuredRun(0, LAUNCH, 20.0, TreeMemory(), tmp_path / "log"))
    assert summary["s_per_round"] == pytest.approx((1.2 + 1.4 + 1.0) / 3)  # rounds 2-4, eval left out
    assert summary["split_s"] == pytest.approx({"fit": (1.0 + 1.2 + 0.9) / 3, "aggregate": 0.5 / 3})
    assert summary["startup_s"] == pytest.approx(1010.0 - 2.5 - LAUNCH)
    assert summary["wall_s_per_round"] == pytest.approx((1012.8 - 1010.0) / 2)  # rounds 2 and 3
    assert summary["train_loss"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    assert summary["history_memory_mb"] == {"driver_peak": 400.0, "actor_peak": 504.0}


def test_lines_seen_together_take_the_polls_time(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps({"round": r, "time_s": {}}) + "\n" for r in (1, 2)) + '{"round": 3')
    watch = HistoryWatch(path)
    watch.poll()
    assert set(watch.line_unix) == {1, 2} and not any(watch.exact.values())  # the partial line waits


def test_case_row_limit_efficiency_and_ratio():
    engine = {"s_per_round": 0.8, "wall_s_per_round": 0.85, "startup_s": 9.0, "train_loss": [2.0, 1.5],
              "memory": {"peak_rss_mb": 2048.0, "peak_pss_mb": 1024.0,
                         "roles": {"driver": {"process_mb": 400.0},
                                   "actor:ClientActor": {"process_mb": 600.0},
                                   "ray services": {"total_mb": 300.0}}}}
    plain = {"s_per_round": 1.2, "startup_s": 5.0, "isolated_fit_s": 0.2, "train_loss": [2.0, 1.5 + 1e-6],
             "memory": {"peak_rss_mb": 512.0}}
    row = case_row(CASES.get("reference"), engine, plain)
    assert row["limit_s"] == pytest.approx(3 * 0.2)  # ⌈5 / 2⌉ waves × the isolated fit
    assert row["efficiency"] == pytest.approx(0.6 / 0.8)
    assert row["plain_ratio"] == pytest.approx(1.5)
    assert row["loss_max_abs_diff"] == pytest.approx(1e-6)
    assert (row["peak_rss_gib"], row["plain_peak_rss_gib"]) == (2.0, 0.5)
    assert (row["driver_mb"], row["client_actor_mb"], row["aggregator_mb"]) == (400.0, 600.0, 0.0)
    table = markdown_table([row])
    assert "| reference | 10 | 5 | 0.800 | 0.850 | 0.600 | 0.75 | 1.200 | 1.50 | 1.0e-06 |" in table
    assert "| reference | 9.0 | 5.0 | 2.00 | 1.00 | 0.50 | 400 | 600 | 0 | 300 | 0 |" in \
        markdown_table([row], MEMORY)
    assert report([row], "fedray bench --cases reference").startswith("`fedray bench --cases reference`")


def test_a_failing_subprocess_is_logged_and_timed(tmp_path):
    run = run_measured([sys.executable, "-c", "print('hello'); raise SystemExit(3)"], tmp_path / "x.log", 60)
    assert run.returncode == 3 and "hello" in run.log.read_text()
    with pytest.raises(BenchError, match="ran over 0 s and was stopped"):
        run_measured([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "y.log", 0.2)
