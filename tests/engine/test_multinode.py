"""On a (simulated) two-node cluster the aggregator runs on the driver's node and the client actors on the
worker node, as on a cluster whose head node takes no work (cluster.yaml).

The cluster is ``ray.cluster_utils.Cluster`` in a subprocess, so it never meets the session's local Ray:
a head node with no CPU (the driver's node) and a worker node with 2 CPUs and a ``worker`` resource.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SCRIPT = textwrap.dedent("""
    import json, sys, tempfile
    import ray
    from ray.cluster_utils import Cluster
    from fedray.config import scenario_from_dict
    from fedray.engine.runtime import WORKER_ENV
    from fedray.engine.observers import RoundCallback
    from fedray.engine.simulation import Simulation

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    worker = cluster.add_node(num_cpus=2, resources={"worker": 1})
    ray.init(address=cluster.address, runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
    cluster.wait_for_nodes()
    scenario = scenario_from_dict({
        "name": "two-nodes", "seed": 0,
        "data": {"source": "digits", "max_train_samples": 60, "max_test_samples": 8},
        "partition": {"name": "iid", "num_clients": 2, "min_client_size": 10},
        "model": {"max_length": 48}, "lora": {"rank": 2},
        "train": {"local_steps": 1, "batch_size": 4},
        "federation": {"rounds": 1, "clients_per_round": 2},
        "eval": {"every": 1, "at_start": False, "batch_size": 8, "max_new_tokens": 2},
        "resources": {"actors": 2, "cpus_per_actor": 1.0},
    })
    seen = {}

    def node_of(actor):
        return ray.get(actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()),
                       timeout=60)

    def on_round(record):
        seen["clients"] = [node_of(a) for a in sim.pool.actors]
        seen["aggregator"] = node_of(sim.aggregator)

    sim = Simulation(scenario, tempfile.mkdtemp(), [RoundCallback(on_round)])
    summary = sim.execute()
    seen.update(driver=ray.get_runtime_context().get_node_id(), head=cluster.head_node.node_id,
                worker=worker.node_id, rounds=[r.server_round for r in summary.rounds])
    print("RESULT " + json.dumps(seen))
    ray.shutdown()
    cluster.shutdown()
""")


@pytest.mark.timeout(600)
def test_aggregator_on_the_driver_node_and_clients_on_the_worker(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=540,
                          cwd=tmp_path, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads(lines[0].removeprefix("RESULT "))
    assert seen["rounds"] == [1]
    assert seen["driver"] == seen["head"] != seen["worker"]
    assert seen["aggregator"] == seen["driver"]
    assert seen["clients"] == [seen["worker"], seen["worker"]]
