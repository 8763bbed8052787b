"""Group clients: N client actors that train one client as one DeepSpeed data-parallel group.

The numeric test puts a 2-actor ZeRO-2 group on the session's 2-CPU cluster and compares its adapter
with one actor's (the same engine, a group of one, in this process): within 1e-4 after three AdamW
steps (2.8e-6 measured, weights moved 3e-2). The ranks collate their halves of each batch with less
padding than the whole batch has, which reorders a few float32 sums. The failure tests use stub actors,
so they build no model.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import ray

from fedray.client.objectives import LocalObjective
from fedray.config import scenario_from_dict
from fedray.data.modality import BOTH
from fedray.data.sources import read_source
from fedray.engine.actors import ClientActor
from fedray.engine.client_setup import ClientSetup
from fedray.engine.pool import ActorPool
from fedray.engine.tasks import FitReport, FitTask

pytestmark = pytest.mark.ray

TOLERANCE = 1e-4


def group_scenario(actors_per_client=2, **resources):
    return scenario_from_dict({
        "name": "group", "seed": 1,
        "model": {"max_length": 48, "tiny": {"text_layers": 2, "vision_layers": 1}},
        "lora": {"rank": 2, "modules_to_save": ["multi_modal_projector"]},
        "train": {"local_steps": 3, "batch_size": 4, "lr": 1e-2,
                  "engine": {"name": "deepspeed", "zero_stage": 2}},
        "federation": {"rounds": 1, "clients_per_round": 1},
        "resources": {"actors": 1, "actors_per_client": actors_per_client, "cpus_per_actor": 1.0,
                      **resources},
    })


def _task(seed=5, rows=12):
    return FitTask(server_round=1, client_id=0, indices=np.arange(rows), masks=(BOTH,) * rows,
                   objective=LocalObjective(), seed=seed)


@pytest.mark.slow  # ~80 s on 2 shared CPUs: three actors build the tiny model
def test_two_actor_group_matches_one_actor(ray_cluster):
    train = read_source("digits", {"image_size": 32}).splits["train"].slice(0, 40)
    s = group_scenario()
    pool = ActorPool(s.resources, ClientSetup.from_scenario(s), ray.put(train), ray.put({}), fits_per_round=1,
                     start_timeout_s=240)
    try:
        assert [info["rank"] for info in pool.info] == [0, 1]
        start = pool.initial_adapter()
        outcome = pool.fit([_task()], ray.put(start), timeout_s=240)
        assert outcome.failures == []
        (report,), (params_ref,) = outcome.reports, outcome.params
        grouped = ray.get(params_ref, timeout=60)
    finally:
        pool.shutdown()
    single = ClientActor(ClientSetup.from_scenario(group_scenario(actors_per_client=1)), train, {})
    expected_report, expected = single.fit(_task(), start)
    assert set(grouped) == set(expected)
    moved = max(float((expected[k] - start[k]).abs().max()) for k in expected)
    diff = max(float((grouped[k] - expected[k]).abs().max()) for k in expected)
    print(f"group vs single actor: max |Δ| = {diff:.2e} (weights moved {moved:.2e})")
    assert moved > 100 * TOLERANCE and diff < TOLERANCE
    assert report.num_examples == expected_report.num_examples == 12
    assert report.metrics["train_loss"] == pytest.approx(expected_report.metrics["train_loss"], rel=1e-4)


class StubActor:
    """A client actor without a model: fits sleep for ``task.slowdown`` seconds."""

    def __init__(self, setup, train, eval_tables) -> None:
        self.rank = 0

    def describe(self):
        return {"rank": self.rank, "trainable_params": 0}

    def rendezvous(self):
        return ("127.0.0.1", 0)

    def join_group(self, address, rank, world_size):
        self.rank = rank
        return rank

    def fit(self, task, global_state):
        time.sleep(task.slowdown)
        if task.seed < 0:
            raise ValueError("bad client")
        return FitReport(client_id=task.client_id, num_examples=1), {"rank": self.rank}


def _stub_pool(**federation):
    s = scenario_from_dict({"resources": {"actors": 1, "actors_per_client": 2, "cpus_per_actor": 0.5},
                            "train": {"engine": {"name": "deepspeed"}},
                            "federation": {"rounds": 1, "clients_per_round": 1, **federation}})
    return ActorPool(s.resources, ClientSetup.from_scenario(s), None, None, fits_per_round=1,
                     fit_retries=s.federation.fit_retries, start_timeout_s=60, actor_cls=StubActor)


@pytest.mark.slow  # ~40 s on 2 shared CPUs: two groups of stub actors start
def test_a_dead_member_fails_the_fit_and_the_whole_group_is_replaced(ray_cluster):
    pool = _stub_pool()
    try:
        old = pool.groups[0]
        victim = old.members[1]
        slow = FitTask(1, 7, np.arange(1), (BOTH,), LocalObjective(), seed=0, slowdown=5.0)
        threading.Timer(1.0, lambda: ray.kill(victim, no_restart=True)).start()
        outcome = pool.fit([slow], ray.put({}), timeout_s=60)
        assert [f.client_id for f in outcome.failures] == [7] and "actor died" in outcome.failures[0].reason
        assert pool.restarts == 1 and pool.groups[0] is not old and len(pool.actors) == 2
        # the replacement group forms and serves the next fit; rank 0's result is the client's
        quick = FitTask(1, 8, np.arange(1), (BOTH,), LocalObjective(), seed=0, slowdown=0.0)
        outcome = pool.fit([quick], ray.put({}), timeout_s=60)
        assert outcome.failures == [] and ray.get(outcome.params[0], timeout=30) == {"rank": 0}
    finally:
        pool.shutdown()


def test_a_member_exception_fails_the_client_and_replaces_the_group(ray_cluster):
    pool = _stub_pool()
    try:
        bad = FitTask(1, 3, np.arange(1), (BOTH,), LocalObjective(), seed=-1, slowdown=0.0)
        outcome = pool.fit([bad], ray.put({}), timeout_s=60)
        assert "ValueError: bad client" in outcome.failures[0].reason
        assert pool.restarts == 1  # its partner might have been waiting in a collective
    finally:
        pool.shutdown()
