"""Every actor group has its next fit queued; finished fits go on at once; a dead group's queued fits
are redone elsewhere without counting as attempts; the deadline tells a queued fit from a running one.
The Ray tests use stub actors (no model)."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
import pytest
import ray

from fedray.client.objectives import LocalObjective
from fedray.config import scenario_from_dict
from fedray.data.modality import BOTH
from fedray.engine.client_setup import ClientSetup
from fedray.engine.dispatch import FitRound
from fedray.engine.group import GroupFit
from fedray.engine.pool import ActorPool
from fedray.engine.tasks import FitReport, FitTask


def _task(client, slowdown=0.0):
    return FitTask(1, client, np.arange(1), (BOTH,), LocalObjective(), seed=0, slowdown=slowdown)


class _FakeGroup:
    size = 1

    def __init__(self):
        self.submitted = []

    def fit(self, task, start, attempt, objective=None):
        self.submitted.append(task.client_id)
        return GroupFit(group=self, task=task, attempt=attempt, report_ref=None, params_ref=None,
                        pending={object()})


class _FakePool:
    retries = 0

    def __init__(self, groups):
        self.groups = groups


def test_each_group_gets_its_next_fit_queued_behind_the_running_one():
    groups = [_FakeGroup(), _FakeGroup()]
    fits = FitRound(_FakePool(groups), lambda task: (None, None), depth=2)
    fits.queue = deque((_task(c), 0) for c in range(5))
    fits._fill()
    assert [g.submitted for g in groups] == [[0, 2], [1, 3]]  # two deep, round robin
    assert [task.client_id for task, _ in fits.queue] == [4]  # the rest waits for a free slot


class _ReplacingPool(_FakePool):
    def replace(self, dead):
        fresh = _FakeGroup()
        self.groups = [fresh if g is dead else g for g in self.groups]
        return fresh


def test_a_dead_actor_fails_the_fit_it_was_running_whichever_error_arrives_first():
    group = _FakeGroup()
    fits = FitRound(_ReplacingPool([group]), lambda task: (None, None), depth=2)
    fits.queue = deque((_task(c), 0) for c in (7, 8))
    fits._fill()
    running, queued = fits.lanes[group]
    fits._settle(queued, ray.exceptions.RayActorError())  # the queued call's error came back first
    assert [f.client_id for f in fits.outcome.failures] == [7]
    assert [task.client_id for task, attempt in fits.queue] == [8] and not fits.waiting


class StubActor:
    """A client actor without a model: a fit sleeps for ``task.slowdown`` seconds."""

    def __init__(self, setup, train, eval_tables) -> None:
        pass

    def describe(self):
        return {"rank": 0, "trainable_params": 0}

    def fit(self, task, global_state):
        time.sleep(task.slowdown)
        return FitReport(client_id=task.client_id, num_examples=1), {"client": task.client_id}


def _pool(actors=1, retries=0):
    s = scenario_from_dict({"resources": {"actors": actors, "cpus_per_actor": 0.5},
                            "federation": {"rounds": 1, "clients_per_round": 2, "fit_retries": retries}})
    return ActorPool(s.resources, ClientSetup.from_scenario(s), None, None, fits_per_round=2,
                     fit_retries=retries, start_timeout_s=60, actor_cls=StubActor)


@pytest.mark.ray
def test_a_dead_actors_queued_fit_is_redone_without_counting_as_an_attempt(ray_cluster):
    pool = _pool()
    try:
        victim = pool.actors[0]
        seen = []
        threading.Timer(1.0, lambda: ray.kill(victim, no_restart=True)).start()
        outcome = pool.fit([_task(7, slowdown=5.0), _task(8)], ray.put({}), timeout_s=60,
                           on_result=lambda report_ref, params_ref, report: seen.append(report.client_id))
        assert [f.client_id for f in outcome.failures] == [7] and "actor died" in outcome.failures[0].reason
        assert [r.client_id for r in outcome.reports] == [8] == seen  # redone on the replacement
        assert ray.get(outcome.params[0], timeout=30) == {"client": 8} and pool.restarts == 1
    finally:
        pool.shutdown()


@pytest.mark.ray
def test_the_deadline_fails_the_running_fit_and_the_queued_one_never_started(ray_cluster):
    pool = _pool()
    try:
        outcome = pool.fit([_task(1, slowdown=30.0), _task(2)], ray.put({}), timeout_s=1.0)
        reasons = {f.client_id: f.reason for f in outcome.failures}
        assert set(reasons) == {1, 2} and all("timed out" in r for r in reasons.values())
        assert "never started" in reasons[2] and "never started" not in reasons[1]
    finally:
        pool.shutdown()


def test_small_adapters_are_forwarded_in_batches_and_the_rest_after_the_last_fit():
    from fedray.engine.dispatch import BATCH_BYTES, ResultBatches

    sent = []
    batches = ResultBatches(sent.append, adapter_nbytes=BATCH_BYTES // 3)
    for client in range(7):
        batches(f"report{client}", f"params{client}", None)
    assert [len(b) for b in sent] == [3, 3]
    batches.flush()
    assert [len(b) for b in sent] == [3, 3, 1] and sent[2] == [("report6", "params6")]
    big = ResultBatches(sent.append, adapter_nbytes=5 * BATCH_BYTES)
    assert big.size == 1  # a big adapter's fold is what costs: each goes on at once
