"""The sweep table after Ctrl+C: a trial stopped before it reported anything has no config in its
result; its row says so instead of failing the whole table."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

import fedray  # noqa: F401  (registers the registry-aware scenario checks)
from fedray.cli.tune import sweep_rows
from fedray.tune import space_from_dict

MINI = str(Path(__file__).resolve().parents[2] / "scenarios" / "mini.yaml")


def _result(path: str, config: dict | None, accuracies: list[float]):
    frame = pd.DataFrame({"val_accuracy": accuracies, "server_round": list(range(1, len(accuracies) + 1))}) \
        if accuracies else None
    return SimpleNamespace(path=path, config=config, metrics_dataframe=frame, error=None)


def test_a_trial_that_never_reported_gets_an_unfinished_row_and_the_others_keep_their_columns():
    space = space_from_dict({"name": "t", "scenario": MINI, "space": {"train.lr": {"grid": [0.001, 0.002]}},
                             "overrides": {"federation.rounds": 2, "data.validation_fraction": 0.1},
                             "metric": "val_accuracy", "mode": "max"})
    done = _result("/x/trial_aaa", {"scenario": "mini", "train.lr": 0.001}, [0.2, 0.5])
    never = _result("/x/trial_bbb", None, [])
    rows = sweep_rows(space, [never, done], {"aaa": "TERMINATED", "bbb": "PENDING"})
    assert [r["trial"] for r in rows] == ["bbb", "aaa"]
    assert list(rows[0]) == list(rows[1])  # the same columns, whichever row comes first
    assert rows[0]["status"] == "unfinished" and rows[0]["rounds"] == 0 and rows[0]["best_val_accuracy"] is None
    assert rows[1]["status"] == "completed" and rows[1]["best_val_accuracy"] == 0.5 and rows[1]["best_round"] == 2
