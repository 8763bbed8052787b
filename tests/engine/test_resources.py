"""Resources: GPU memory per actor (CUDA calls faked on CPU), pool sizes derived from the cluster, trial
bundles, and placement with declared fake GPUs (a local cluster in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from fedray.config.schema import ResourcesConfig
from fedray.engine import devices, pool
from fedray.engine.group import fitting_groups
from fedray.errors import FedRayError, SchedulingError

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


@pytest.fixture
def cuda_calls(monkeypatch):
    calls = []
    for name in ("set_per_process_memory_fraction", "reset_peak_memory_stats", "empty_cache"):
        monkeypatch.setattr(torch.cuda, name, lambda *args, _name=name: calls.append((_name, args)))
    return calls


def test_memory_is_capped_only_for_a_fraction_of_a_visible_gpu(cuda_calls):
    assert devices.cap_memory(CUDA, 0.25) == 0.25
    assert cuda_calls == [("set_per_process_memory_fraction", (0.25, CUDA))]
    assert devices.cap_memory(CUDA, 1.0) is None  # a whole GPU: nothing to share
    assert devices.cap_memory(CUDA, 0.5, enabled=False) is None  # resources.cap_gpu_memory: false
    assert devices.cap_memory(CPU, 0.5) is None  # Ray's GPU, invisible to torch
    assert len(cuda_calls) == 1


def test_peak_is_per_fit_and_memory_is_released_between_clients(cuda_calls, monkeypatch):
    devices.begin_fit(CUDA)
    devices.release_memory(CUDA)
    assert [name for name, _ in cuda_calls] == ["reset_peak_memory_stats", "empty_cache"]
    devices.begin_fit(CPU)
    devices.release_memory(CPU)
    assert len(cuda_calls) == 2
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 3 * 2**20)
    assert devices.peak_memory_mb(CUDA) == 3.0 and devices.peak_memory_mb(CPU) > 0


def test_device_is_what_torch_sees(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.pick_device() == CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.pick_device().type == "cuda"


def _node(cpu, gpu=0.0, alive=True):
    return {"Alive": alive, "Resources": {"CPU": cpu, **({"GPU": gpu} if gpu else {})}}


def test_groups_are_counted_per_node():
    nodes = [_node(3, 2), _node(3, 1), _node(64, 8, alive=False)]
    assert fitting_groups(ResourcesConfig(cpus_per_actor=2), nodes) == 2  # not 6 // 2 = 3
    assert fitting_groups(ResourcesConfig(cpus_per_actor=0.5, gpus_per_actor=0.5), nodes) == 6
    assert fitting_groups(ResourcesConfig(actors_per_client=2, cpus_per_actor=1, gpus_per_actor=1),
                          nodes) == 1
    assert fitting_groups(ResourcesConfig(cpus_per_actor=0), nodes) is None


def test_derived_pool_is_capped_and_an_impossible_one_says_why(monkeypatch):
    derived = ResourcesConfig(actors=None, cpus_per_actor=4, gpus_per_actor=1)
    monkeypatch.setattr(pool, "fitting_groups", lambda res: 5)
    assert pool.pool_size(derived, fits_per_round=3) == 3
    assert pool.pool_size(ResourcesConfig(actors=7), fits_per_round=3) == 7  # stated: kept
    monkeypatch.setattr(pool, "fitting_groups", lambda res: 0)
    monkeypatch.setattr(pool, "cluster_totals", lambda: {"CPU": 2.0, "GPU": 0.0})
    with pytest.raises(SchedulingError) as info:
        pool.pool_size(derived, fits_per_round=3)
    message = str(info.value)
    assert "4 CPU, 1 GPU" in message and "2 CPU and 0 GPU" in message
    assert "Lower resources.cpus_per_actor" in message


def test_trial_bundles_reserve_every_group_member_and_need_a_stated_pool():
    from fedray.tune.trainable import trial_bundles
    from tests.tune.test_space import sweep

    space = sweep(overrides={"resources.actors": 2, "resources.actors_per_client": 2,
                             "train.engine.name": "deepspeed", "resources.gpus_per_actor": 1},
                  placement={"driver_cpus": 0.5})
    assert trial_bundles(space, {"scenario": "mini"}) == [{"CPU": 0.5}] + [{"CPU": 1.0, "GPU": 1.0}] * 4
    unsized = sweep(overrides={"resources.actors": None})
    with pytest.raises(FedRayError, match="set resources.actors in the sweep's overrides"):
        trial_bundles(unsized, {"scenario": "mini"})


FAKE_GPUS = textwrap.dedent("""
    import json, time
    import ray
    from fedray.config import scenario_from_dict
    from fedray.engine.pool import ActorPool
    from fedray.engine.runtime import WORKER_ENV
    from fedray.errors import SchedulingError

    class Stub:
        def __init__(self, *args):
            pass
        def describe(self):
            return {"gpu_ids": ray.get_gpu_ids()}
        def rendezvous(self):
            return ("127.0.0.1", 0)
        def join_group(self, address, rank, world_size):
            return rank

    def pool(**resources):
        engine = "deepspeed" if resources.get("actors_per_client", 1) > 1 else "torch"
        s = scenario_from_dict({"partition": {"num_clients": 10}, "train": {"engine": {"name": engine}},
                                "federation": {"clients_per_round": 10},
                                "resources": {"cpus_per_actor": 0.25, **resources}})
        return ActorPool(s.resources, None, None, None, fits_per_round=10, start_timeout_s=60, actor_cls=Stub)

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": WORKER_ENV})
    out = {}
    p = pool(actors=4, gpus_per_actor=0.5)
    out["placed"] = len(p.info)
    out["gpu_ids"] = sorted(str(i["gpu_ids"][0]) for i in p.info)
    p.shutdown()
    start = time.monotonic()
    try:
        pool(actors=5, gpus_per_actor=0.5)
    except SchedulingError as exc:
        out["error"], out["error_s"] = str(exc), time.monotonic() - start
    p = pool(actors=None, gpus_per_actor=0.5)
    out["derived"] = len(p.groups)
    p.shutdown()
    p = pool(actors=None, actors_per_client=2, gpus_per_actor=1)
    out["derived_groups"], out["group_size"] = len(p.groups), p.groups[0].size
    p.shutdown()
    print("RESULT " + json.dumps(out))
    ray.shutdown()
""")


@pytest.mark.ray
@pytest.mark.slow  # ~85 s on 2 shared CPUs: a cluster start and four small pools
@pytest.mark.timeout(400)
def test_placement_with_declared_fake_gpus(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", FAKE_GPUS], capture_output=True, text=True, timeout=360,
                          cwd=tmp_path, env={**env, "PYTHONPATH": os.getcwd()})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(lines[0].removeprefix("RESULT "))
    assert out["placed"] == 4 and out["gpu_ids"] == ["0", "0", "1", "1"]  # two actors share each GPU
    assert "5 actors × 0.5 GPU = 2.5 GPU but the cluster has 2" in out["error"] and out["error_s"] < 10
    assert out["derived"] == 4
    assert out["derived_groups"] == 1 and out["group_size"] == 2
