"""A client actor killed during a round: its client fails that round, the actor is replaced, the run
goes on; with retries the fit is redone on another actor."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import ray

from fedray.engine.history import read_history
from fedray.engine.observers import RoundCallback
from fedray.engine.simulation import Simulation
from fedray.errors import FedRayError
from tests.engine.test_simulation import small_scenario

pytestmark = pytest.mark.ray


def _killer(sim_box: dict, at_round: int, delay_s: float):
    """on_round callback: once round ``at_round - 1`` is recorded, kill actor 0 shortly after."""

    def on_round(record):
        if record.server_round == at_round - 1:
            sim = sim_box["sim"]
            victim = sim.pool.actors[0]
            threading.Timer(delay_s, lambda: ray.kill(victim, no_restart=True)).start()

    return on_round


@pytest.mark.parametrize("retries", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_actor_killed_mid_round(ray_cluster, tmp_path, retries):
    base = small_scenario()
    # Fits long enough (≈1–2 s each) that the kill, 0.3 s into round 2, lands inside one on any machine.
    s = replace(base, train=replace(base.train, local_steps=80),
                federation=replace(base.federation, rounds=3, fit_retries=retries),
                eval=replace(base.eval, every=0, at_start=False))
    box: dict = {}
    sim = Simulation(s, tmp_path, [RoundCallback(_killer(box, at_round=2, delay_s=0.3))])
    box["sim"] = sim
    sim.execute()
    history = read_history(tmp_path / "history.jsonl")
    assert [h["round"] for h in history] == [1, 2, 3]
    if retries:
        assert history[1]["failures"] == [] and history[1]["aggregate"]["num_results"] == 3
        assert history[1]["retries"] and all("actor died" in r["reason"] for r in history[1]["retries"]), \
            "a retried fit is recorded in the history"
    else:
        assert [f["client_id"] for f in history[1]["failures"]] and \
            all("actor died" in f["reason"] for f in history[1]["failures"])
    assert history[2]["failures"] == [] and history[2]["aggregate"]["num_results"] == 3, \
        "the replacement actor serves the next round"


def test_simulated_system_heterogeneity_is_recorded_apart(ray_cluster, tmp_path):
    from fedray.config.schema import SystemConfig

    base = small_scenario()
    s = replace(base, partition=replace(base.partition, num_clients=4, min_client_size=5),
                federation=replace(base.federation, rounds=2, clients_per_round=4),
                system=SystemConfig(availability=0.8, dropout=0.3),
                eval=replace(base.eval, every=0, at_start=False))
    Simulation(s, tmp_path).execute()
    for record in read_history(tmp_path / "history.jsonl"):
        system = record["system"]
        assert set(system) == {"unavailable", "dropped", "slow"}
        assert not set(record["clients"]) & set(system["unavailable"])
        assert record["failures"] == []
        assert record["aggregate"]["num_results"] == len(record["clients"]) - len(system["dropped"])


def test_unschedulable_resources_fail_fast_with_a_diagnosis(ray_cluster, tmp_path):
    import time

    from fedray.errors import SchedulingError

    base = small_scenario()
    s = replace(base, resources=replace(base.resources, actors=2, cpus_per_actor=8, gpus_per_actor=0.5))
    start = time.monotonic()
    with pytest.raises(SchedulingError) as info:
        Simulation(s, tmp_path).execute()
    assert time.monotonic() - start < 60
    message = str(info.value)
    assert "16 CPU but the cluster has 2" in message and "1 GPU but the cluster has 0" in message
    assert "Lower resources.actors" in message


def test_nan_update_is_rejected_not_averaged(ray_cluster, tmp_path):
    # lr = inf makes every update non-finite: each fit is rejected and the round fails its quorum.
    base = small_scenario()
    s = replace(base, train=replace(base.train, lr=float("inf")),
                federation=replace(base.federation, rounds=1), eval=replace(base.eval, at_start=False))
    with pytest.raises(FedRayError, match="round 1: aggregation failed: .*(non-finite|NaN|Inf)"):
        Simulation(s, tmp_path).execute()
    history = read_history(tmp_path / "history.jsonl")
    assert [h["round"] for h in history] == [1] and history[0]["aggregate"] == {}


def test_a_full_disk_stops_the_run_with_what_was_saved(ray_cluster, tmp_path, monkeypatch):
    import errno

    from fedray.engine.history import HistoryWriter

    real_append = HistoryWriter.append

    def append(self, record):
        if record.server_round == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real_append(self, record)

    monkeypatch.setattr(HistoryWriter, "append", append)
    base = small_scenario()
    s = replace(base, federation=replace(base.federation, rounds=3), eval=replace(base.eval, every=0))
    with pytest.raises(FedRayError) as info:
        Simulation(s, tmp_path).execute()
    message = str(info.value)
    assert "the run stopped: could not write" in message and "the disk is full" in message
    assert "the checkpoint is at round 1" in message and f"fedray run --resume {tmp_path}" in message
    assert not list(tmp_path.rglob("*.tmp"))
    assert [h["round"] for h in read_history(tmp_path / "history.jsonl")] == [0, 1]


def _aggregator_killer(box: dict, at_round: int, times: int):
    """on_round callback: kill the aggregator after round ``at_round``'s record (before its checkpoint),
    the first ``times`` times that round is recorded."""
    kills = []

    def on_round(record):
        if record.server_round == at_round and len(kills) < times:
            kills.append(record.server_round)
            aggregator = box["sim"].aggregator
            ray.kill(aggregator, no_restart=True)
            _wait_until_dead(aggregator)

    return on_round


def _wait_until_dead(actor, limit_s: float = 60.0) -> None:
    """``ray.kill`` returns before the actor is gone; a call sent meanwhile may still be served (a
    race on a loaded machine). The death must come where the test puts it: wait for it."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            ray.get(actor.global_nbytes.remote(), timeout=5)
        except ray.exceptions.RayActorError:
            return
        except ray.exceptions.GetTimeoutError:  # busy or dying: ask again
            continue
        time.sleep(0.05)
    raise AssertionError("the killed aggregator still answers")


def test_a_dead_aggregator_is_restarted_from_the_checkpoint(ray_cluster, tmp_path):
    from tests.engine.test_resume import _without_timings

    base = small_scenario()
    s = replace(base, federation=replace(base.federation, rounds=3), strategy=replace(
        base.strategy, name="fedadam", options={"eta": 1e-2}), eval=replace(base.eval, every=2))
    Simulation(s, tmp_path / "whole").execute()
    box: dict = {}
    sim = Simulation(s, tmp_path / "restarted", [RoundCallback(_aggregator_killer(box, 2, times=1))])
    box["sim"] = sim
    summary = sim.execute()
    assert [r.server_round for r in summary.rounds] == [0, 1, 2, 3]
    whole = read_history(tmp_path / "whole" / "history.jsonl")
    assert _without_timings(read_history(tmp_path / "restarted" / "history.jsonl")) == _without_timings(whole)
    from fedray.engine.adapter_files import adapter_weights_path

    assert adapter_weights_path(tmp_path / "restarted", "global_adapter").read_bytes() == \
        adapter_weights_path(tmp_path / "whole", "global_adapter").read_bytes()


def test_a_dead_aggregator_stops_the_run_with_the_resume_command(ray_cluster, tmp_path):
    base = small_scenario()
    s = replace(base, federation=replace(base.federation, rounds=3),
                eval=replace(base.eval, every=0, at_start=False))
    box: dict = {}
    # it dies again after its restart: the run stops
    sim = Simulation(s, tmp_path, [RoundCallback(_aggregator_killer(box, 2, times=2))])
    box["sim"] = sim
    with pytest.raises(FedRayError, match="the aggregator actor died.*checkpoint is at round 1.*"
                                          "fedray run --resume"):
        sim.execute()
    # the run it names continues from there (its history keeps round 1)
    summary = Simulation(s, tmp_path, resume=True).execute()
    assert [r.server_round for r in summary.rounds] == [1, 2, 3]
