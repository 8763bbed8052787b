"""A round's results reach the aggregator in cohort order, whatever order the fits finished in."""

from __future__ import annotations

import numpy as np

from fedray.data.modality import BOTH
from fedray.engine.pool import FitOutcome
from fedray.engine.tasks import FitReport, FitTask
from fedray.strategies.base import ClientFailure


def _task(client_id: int) -> FitTask:
    return FitTask(server_round=1, client_id=client_id, indices=np.arange(2), masks=(BOTH, BOTH),
                   objective=None, seed=0)


def test_outcome_is_put_in_the_order_the_tasks_were_dispatched():
    tasks = [_task(c) for c in (7, 2, 5, 9)]
    finished = FitOutcome(reports=[FitReport(5, 10), FitReport(7, 11), FitReport(2, 12)],
                          params=["p5", "p7", "p2"],
                          failures=[ClientFailure(9, "timed out")])
    ordered = finished.in_cohort_order(tasks)
    assert [r.client_id for r in ordered.reports] == [7, 2, 5]
    assert ordered.params == ["p7", "p2", "p5"]  # params stay aligned with their reports
    assert [f.client_id for f in ordered.failures] == [9]


def test_failures_are_ordered_too():
    tasks = [_task(c) for c in (3, 1, 4)]
    outcome = FitOutcome(failures=[ClientFailure(4, "a"), ClientFailure(3, "b"), ClientFailure(1, "c")])
    assert [f.client_id for f in outcome.in_cohort_order(tasks).failures] == [3, 1, 4]
