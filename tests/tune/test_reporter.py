"""Tune reporting as a round observer: evaluated rounds from 1, the last one only once the run is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedray.engine.history import RoundRecord
from fedray.engine.observers import RunStart
from fedray.engine.summary import RunSummary
from fedray.errors import FedRayError
from fedray.tune.trainable import TuneReporter


def _round(server_round: int, **fields) -> RoundRecord:
    return RoundRecord(server_round=server_round, eval={"accuracy": 0.1 * server_round},
                       validation={"accuracy": 0.2}, **fields)


def _reporter(metric: str = "val_accuracy") -> tuple[TuneReporter, list[dict]]:
    sent: list[dict] = []
    reporter = TuneReporter(metric, sent.append)
    reporter.on_start(RunStart(Path("run"), None, 0, 3))
    return reporter, sent


def test_reports_evaluated_rounds_and_holds_the_last_until_the_run_is_done():
    reporter, sent = _reporter()
    for record in (_round(0), _round(1, train_loss=2.0), RoundRecord(server_round=2), _round(3)):
        reporter.on_round(record)
    assert [m["server_round"] for m in sent] == [1]  # round 0 and unevaluated rounds are not reported
    assert sent[0]["val_accuracy"] == 0.2 and sent[0]["train_loss"] == 2.0
    reporter.on_finish(RunSummary(Path("run")), completed=True)
    assert [m["server_round"] for m in sent] == [1, 3]


def test_a_failed_run_does_not_report_its_held_last_round():
    reporter, sent = _reporter()
    reporter.on_round(_round(3))
    reporter.on_finish(RunSummary(Path("run")), completed=False)
    assert sent == []


def test_a_metric_the_rounds_do_not_report_is_a_clear_error():
    reporter, _ = _reporter("val_macro_f1")
    with pytest.raises(FedRayError, match="optimises 'val_macro_f1'.*data.validation_fraction"):
        reporter.on_round(_round(1))
