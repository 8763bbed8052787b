"""Several fits per Ray call: k chosen from measured fit times; calls of consecutive fresh fits; a fit
that raises inside a call fails alone; a call whose actor dies sends its fits back uncharged, each alone
(a fit that kills its actor again is the one charged); chunked and unchunked rounds give the same bits.
The Ray tests use stub actors (no model) except the end-to-end comparison."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import ray

from fedray.client.objectives import LocalObjective
from fedray.config import scenario_from_dict
from fedray.data.modality import BOTH
from fedray.engine.chunking import MIN_CALLS_PER_GROUP, CallSizer, auto_fits_per_call
from fedray.engine.client_setup import ClientSetup
from fedray.engine.dispatch import FitRound, InCall, fetch_params
from fedray.engine.group import GroupFit
from fedray.engine.pool import ActorPool
from fedray.engine.tasks import FitFailure, FitReport, FitTask
from fedray.errors import ConfigError


def _task(client, slowdown=0.0, seed=0):
    return FitTask(1, client, np.arange(1), (BOTH,), LocalObjective(), seed=seed, slowdown=slowdown)


# -- choosing k -------------------------------------------------------------------------------------
def test_auto_takes_several_short_fits_per_call_and_one_long_fit():
    assert auto_fits_per_call([], fits=50, groups=2) == 1  # nothing measured yet (a run's first round)
    short = auto_fits_per_call([0.02] * 50, fits=50, groups=2)
    assert 2 <= short <= 50 // (2 * MIN_CALLS_PER_GROUP)
    assert auto_fits_per_call([1.5] * 50, fits=50, groups=2) == 1  # a call's cost is noise beside it


def test_auto_leaves_every_group_several_calls_a_round():
    # instant fits would want huge calls; the cap keeps MIN_CALLS_PER_GROUP calls per group
    assert auto_fits_per_call([1e-4], fits=400, groups=2) == 400 // (2 * MIN_CALLS_PER_GROUP)
    assert auto_fits_per_call([1e-4], fits=5, groups=2) == 1  # too few fits to share out


def test_the_sizer_follows_the_setting_the_last_round_and_group_clients():
    auto = CallSizer(None)
    assert auto.next(fits=50, groups=2) == 1
    auto.observe([FitReport(client_id=c, num_examples=1, fit_s=0.02) for c in range(50)])
    assert auto.next(fits=50, groups=2) > 1
    auto.observe([])  # a round without results keeps what was measured
    assert auto.next(fits=50, groups=2) > 1
    assert CallSizer(7).next(fits=50, groups=2) == 7
    assert CallSizer(None, actors_per_client=2).next(fits=50, groups=2) == 1


def test_the_schema_takes_an_int_or_null_and_refuses_chunks_for_group_clients():
    assert scenario_from_dict({}).resources.fits_per_call is None
    assert scenario_from_dict({"resources": {"fits_per_call": 4}}).resources.fits_per_call == 4
    with pytest.raises(ConfigError, match="fits_per_call"):
        scenario_from_dict({"resources": {"fits_per_call": 0}})
    with pytest.raises(ConfigError, match="fits_per_call=4 needs actors_per_client=1"):
        scenario_from_dict({"resources": {"fits_per_call": 4, "actors_per_client": 2},
                            "train": {"engine": {"name": "deepspeed"}}})


# -- dispatch, with fake groups ---------------------------------------------------------------------
class _FakeGroup:
    size = 1

    def __init__(self):
        self.calls = []

    def fit(self, task, start, attempt, objective=None):
        self.calls.append([task.client_id])
        return GroupFit(group=self, task=task, attempt=attempt, report_ref=None, params_ref=None,
                        pending={object()})

    def fit_chunk(self, tasks, starts, objectives):
        self.calls.append([t.client_id for t in tasks])
        return GroupFit(group=self, task=tasks[0], attempt=0, report_ref=None, params_ref=None,
                        pending={object()}, chunk=tuple(tasks))


class _FakePool:
    retries = 0

    def __init__(self, groups):
        self.groups = groups
        self.restarts = 0

    def replace(self, dead):
        fresh = _FakeGroup()
        self.groups = [fresh if g is dead else g for g in self.groups]
        self.restarts += 1
        return fresh


def test_calls_carry_consecutive_fresh_fits_and_retries_go_alone():
    groups = [_FakeGroup(), _FakeGroup()]
    fits = FitRound(_FakePool(groups), lambda task: (None, None), depth=2, per_call=3)
    fits.queue = deque([(_task(c), 0) for c in range(5)] + [(_task(5), 1)] + [(_task(c), 0) for c in (6, 7)]
                       + [(_task(c), 0) for c in range(8, 16)])
    fits.alone = {6}
    fits._fill()
    assert [g.calls for g in groups] == [[[0, 1, 2], [5]], [[3, 4], [6]]]
    assert [task.client_id for task, _ in fits.queue] == [7] + list(range(8, 16))


def test_calls_shrink_as_the_queue_drains():
    groups = [_FakeGroup(), _FakeGroup()]
    fits = FitRound(_FakePool(groups), lambda task: (None, None), depth=2, per_call=6)
    fits.queue = deque((_task(c), 0) for c in range(50))
    fits._fill()
    while fits.queue:
        for group in groups:  # each group's oldest call finishes and its slot is refilled
            fits.lanes[group].popleft()
        fits._fill()
    calls = [len(call) for g in groups for call in g.calls]
    assert sum(calls) == 50 and calls[0] == 6
    assert max(len(g.calls[-1]) for g in groups) <= 2, "the last calls are short"


def test_a_dead_actor_sends_its_calls_fits_back_uncharged_each_alone():
    group = _FakeGroup()
    pool = _FakePool([group])
    fits = FitRound(pool, lambda task: (None, None), depth=2, per_call=2)
    fits.queue = deque((_task(c), 0) for c in (1, 2, 3, 4, 5))
    fits._fill()
    running, queued = fits.lanes[group]
    fits._settle(queued, ray.exceptions.RayActorError())  # whichever call's error comes back first
    assert fits.outcome.failures == [] and fits.outcome.retries == [] and pool.restarts == 1
    assert [(t.client_id, attempt) for t, attempt in fits.queue] == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]
    assert fits.alone == {1, 2} and not fits.waiting  # the running call's fits; the queued one stays whole
    fresh = pool.groups[0]
    fits._fill()
    assert fresh.calls == [[1], [2]]


def test_the_deadline_fails_every_fit_of_the_running_call_and_marks_the_queued_ones():
    group = _FakeGroup()
    fits = FitRound(_FakePool([group]), lambda task: (None, None), depth=2, per_call=2)
    fits.queue = deque((_task(c), 0) for c in (1, 2, 3, 4, 5))
    fits._fill()
    fits.waiting.clear()  # nothing real to cancel
    fits._expire(1.0)
    reasons = {f.client_id: f.reason for f in fits.outcome.failures}
    assert set(reasons) == {1, 2, 3, 4, 5} and all("timed out" in r for r in reasons.values())
    assert [c for c, r in sorted(reasons.items()) if "never started" in r] == [3, 4, 5]


# -- dispatch on Ray, with stub actors --------------------------------------------------------------
class StubActor:
    """A client actor without a model: a fit sleeps ``task.slowdown`` s; seed −1 raises, seed −2 kills
    the actor's process. ``fit_chunk`` is the real one."""

    def __init__(self, setup, train, eval_tables) -> None:
        from fedray.engine.actors import ClientActor

        self._chunk = ClientActor.fit_chunk
        self.model = _NoModel()
        self.device = SimpleNamespace(type="cpu")

    def describe(self):
        return {"rank": 0, "trainable_params": 0}

    def fit(self, task, global_state, objective=None):
        time.sleep(task.slowdown)
        if task.seed == -1:
            raise ValueError(f"bad client {task.client_id}")
        if task.seed == -2:
            os._exit(1)
        got = {} if objective is None else {"from": global_state, "with": objective}
        return FitReport(client_id=task.client_id, num_examples=1), {"client": task.client_id, **got}

    def fit_chunk(self, tasks, starts, objectives, *inputs):
        return self._chunk(self, tasks, starts, objectives, *inputs)


class _NoModel:
    def zero_grad(self, set_to_none=True):
        pass


def _pool(retries=0):
    s = scenario_from_dict({"resources": {"actors": 1, "cpus_per_actor": 0.5},
                            "federation": {"rounds": 1, "clients_per_round": 3, "fit_retries": retries}})
    # one call at a time: a call may then take the whole queue (with two, at most half of it)
    return ActorPool(s.resources, ClientSetup.from_scenario(s), None, None, fits_per_round=3,
                     fit_retries=retries, start_timeout_s=60, actor_cls=StubActor, queue_depth=1)


@pytest.mark.ray
def test_each_fit_of_a_call_gets_its_own_start_and_objective(ray_cluster):
    pool = _pool()
    try:
        shared = ray.put("global")
        starts = {2: ray.put("own adapter of 2")}  # the local baseline: a client's own adapter
        objectives = {c: ray.put(f"objective of {c}") for c in (1, 2, 3)}
        outcome = pool.fit([_task(1), _task(2), _task(3)], shared, timeout_s=60, start_refs=starts,
                           objectives=objectives, fits_per_call=3)
        assert [fetch_params(p, 30) for p in outcome.params] == [
            {"client": 1, "from": "global", "with": "objective of 1"},
            {"client": 2, "from": "own adapter of 2", "with": "objective of 2"},
            {"client": 3, "from": "global", "with": "objective of 3"}]
    finally:
        pool.shutdown()


@pytest.mark.ray
def test_a_fit_raising_inside_a_call_fails_only_itself(ray_cluster):
    pool = _pool()
    try:
        seen = []
        outcome = pool.fit([_task(1), _task(2, seed=-1), _task(3)], ray.put({}), timeout_s=60,
                           on_result=lambda report_ref, params_ref, reports: seen.append(reports),
                           fits_per_call=3)
        assert [(f.client_id, f.reason) for f in outcome.failures] == [(2, "ValueError: bad client 2")]
        assert [r.client_id for r in outcome.reports] == [1, 3] and pool.restarts == 0
        assert all(isinstance(p, InCall) for p in outcome.params)  # one call carried them
        assert [fetch_params(p, 30) for p in outcome.params] == [{"client": 1}, {"client": 3}]
        (reports,) = seen  # one call, handed on once, failure included (the aggregator skips it)
        assert [type(r) for r in reports] == [FitReport, FitFailure, FitReport]
    finally:
        pool.shutdown()


@pytest.mark.ray
@pytest.mark.slow  # ~15 s on 2 shared CPUs (a replacement actor starts); the next test covers it too
def test_a_call_whose_actor_is_killed_is_redone_uncharged(ray_cluster):
    pool = _pool()
    try:
        victim = pool.actors[0]
        threading.Timer(1.0, lambda: ray.kill(victim, no_restart=True)).start()
        outcome = pool.fit([_task(7, slowdown=5.0), _task(8), _task(9)], ray.put({}), timeout_s=60,
                           fits_per_call=3)
        assert outcome.failures == [] and outcome.retries == [] and pool.restarts == 1
        assert [r.client_id for r in outcome.reports] == [7, 8, 9]  # each redone in a call of its own
        assert [fetch_params(p, 30) for p in outcome.params] == [{"client": c} for c in (7, 8, 9)]
    finally:
        pool.shutdown()


@pytest.mark.ray
def test_the_client_that_kills_its_actor_is_the_one_charged(ray_cluster):
    pool = _pool()
    try:
        outcome = pool.fit([_task(1), _task(2, seed=-2), _task(3)], ray.put({}), timeout_s=60,
                           fits_per_call=3)
        assert [f.client_id for f in outcome.failures] == [2] and "actor died" in outcome.failures[0].reason
        assert [r.client_id for r in outcome.reports] == [1, 3]
        assert pool.restarts == 2  # the call of three, then client 2 alone
    finally:
        pool.shutdown()


# -- the same bits, chunked or not --------------------------------------------------------------------
def test_an_actors_call_of_several_fits_returns_what_separate_calls_return(tmp_path, monkeypatch):
    import torch

    from fedray.data.sources import read_source
    from fedray.engine.actors import ClientActor

    monkeypatch.setenv("FEDRAY_CACHE", str(tmp_path))
    s = scenario_from_dict({"name": "chunk", "seed": 2,
                            "model": {"max_length": 64, "tiny": {"text_layers": 1, "vision_layers": 1}},
                            "lora": {"rank": 2, "train_projector": True},
                            "train": {"local_steps": 2, "batch_size": 2, "lr": 1e-2}})
    rows = read_source("digits", {}).splits["train"].slice(0, 12)
    actor = ClientActor(ClientSetup.from_scenario(s), rows, {})
    start = actor.initial_adapter()
    tasks = [FitTask(1, c, np.arange(4 * c, 4 * c + 4), (BOTH,) * 4, LocalObjective(), seed=10 + c)
             for c in range(3)]
    broken = replace(tasks[1], indices=np.array([10_000]))  # a row that does not exist: this fit raises
    alone = [actor.fit(task, start) for task in tasks]
    reports, params = actor.fit_chunk([tasks[0], broken, tasks[2]], [0, 0, 0], [None, 1, None],
                                      start, LocalObjective())
    assert isinstance(reports[1], FitFailure) and params[1] is None and reports[1].client_id == 1
    for (expected_report, expected), report, state in zip(alone[::2], reports[::2], params[::2]):
        assert report.metrics == expected_report.metrics
        assert all(torch.equal(state[k], expected[k]) for k in expected)
    reports, params = actor.fit_chunk(tasks, [0, 0, 0], [None] * 3, start)  # and after a failure
    assert [r.metrics for r in reports] == [r.metrics for r, _ in alone]
    assert all(torch.equal(p[k], e[k]) for p, (_, e) in zip(params, alone) for k in e)


def test_the_aggregator_takes_a_calls_lists_as_it_takes_single_results(tmp_path):
    import torch

    from fedray.engine.aggregator import AggregatorActor
    from tests.engine.test_streaming import _initial, _setup, _update

    cohort = [4, 1, 3, 0]
    results = {c: _update(c) for c in cohort}
    single = AggregatorActor(_setup("fedadam", eta=0.1), _initial(), str(tmp_path / "single"))
    single.begin_round(1, [(c, 3 + c) for c in cohort])
    single.add_results(1, *(x for c in (4, 1, 3) for x in results[c]))  # client 0 failed
    chunked = AggregatorActor(_setup("fedadam", eta=0.1), _initial(), str(tmp_path / "chunked"))
    chunked.begin_round(1, [(c, 3 + c) for c in cohort])
    failed = FitFailure(0, "ValueError: gone")
    chunked.add_results(1, [results[3][0], failed], [results[3][1], None],  # calls arrive in any order
                        [results[4][0], results[1][0]], [results[4][1], results[1][1]])
    assert single.close_round(1, [failed]) == chunked.close_round(1, [failed])
    expected, got = single.get_global(), chunked.get_global()
    assert list(got) == list(expected) and all(torch.equal(got[k], expected[k]) for k in expected)


@pytest.mark.ray
@pytest.mark.slow  # ~60 s on 2 shared CPUs: two runs; the two tests above check the same parts fast
def test_chunked_and_unchunked_runs_give_identical_histories_and_adapters(ray_cluster, tmp_path):
    from safetensors.numpy import load_file

    from fedray.engine.history import read_history
    from fedray.engine.simulation import Simulation
    from tests.engine.test_resume import _without_timings
    from tests.engine.test_simulation import small_scenario

    base = small_scenario()
    s = replace(base, partition=replace(base.partition, num_clients=8, min_client_size=8),
                data=replace(base.data, max_train_samples=160),
                federation=replace(base.federation, rounds=1, clients_per_round=8),
                strategy=replace(base.strategy, name="fedadam", options={"eta": 1e-2}),
                eval=replace(base.eval, every=0, at_start=False, save_predictions=False))
    runs = {}
    for per_call in (1, 3):
        chunked = replace(s, resources=replace(s.resources, fits_per_call=per_call))
        Simulation(chunked, tmp_path / str(per_call)).execute()
        run_dir = tmp_path / str(per_call)
        runs[per_call] = (_without_timings(read_history(run_dir / "history.jsonl")),
                          load_file(run_dir / "global_adapter" / "adapter_model.safetensors"))
    (history_1, adapter_1), (history_3, adapter_3) = runs[1], runs[3]
    assert history_3 == history_1 and len(history_1) == 1
    assert adapter_3.keys() == adapter_1.keys()
    assert all(np.array_equal(adapter_3[k], adapter_1[k]) for k in adapter_1)
