"""The aggregator actor's memory and start-up CPU, measured as the engine starts it.

    PYTHONPATH=. .venv/bin/python benchmarks/aggregator_memory.py                    # FedAvg
    PYTHONPATH=. .venv/bin/python benchmarks/aggregator_memory.py strategy=fedadam --checkpoint

Starts Ray as ``fedray run`` does, then the aggregator actor as the simulation does (the driver's
stand-in class, pinned to this node, no resources), hands it a global adapter of the mini scenario's
size (100,752 float32 values as one flat buffer), runs ``--rounds`` rounds of ``--clients`` flat
results through begin_round / add_results / close_round, and prints the actor process's RSS and CPU
seconds (user + system since it started: its imports, building the strategy, the rounds), with a bare
actor's for comparison, and whether the aggregator imported torch. ``--checkpoint`` writes a
checkpoint after the rounds (which imports torch to write the file) and prints the RSS again.
Run it with another tree on PYTHONPATH to measure that tree's aggregator the same way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import psutil
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fedray.config.schema import ObjectiveConfig, ResourcesConfig, StrategyConfig
from fedray.engine.remote import AggregatorActor
from fedray.engine.runtime import ensure_ray
from fedray.engine.tasks import AggregatorSetup, FitReport
from fedray.flat import ALIGN, FlatState, Layout, Slot

#: The mini scenario's adapter, roughly: 100,752 float32 values in 24 tensors.
SHAPES = [(f"layer{i}.lora_{ab}", (8, 128) if ab == "A" else (128, 8)) for i in range(8) for ab in "AB"] + \
    [(f"projector.{i}", (1, 6090)) for i in range(8)]


def layout() -> Layout:
    slots, offset = [], 0
    for key, shape in SHAPES:
        nbytes = int(np.prod(shape)) * 4
        slots.append(Slot(key, shape, "float32", offset, nbytes))
        offset += -(-nbytes // ALIGN) * ALIGN
    return Layout(tuple(slots), offset)


def random_state(rng: np.random.Generator, flat_layout: Layout) -> FlatState:
    values = rng.standard_normal(flat_layout.nbytes // 4).astype(np.float32)
    return FlatState(flat_layout, values.view(np.uint8))


@ray.remote(num_cpus=0)
class BareActor:
    """A Ray actor that imports nothing: the floor every actor pays."""

    def ping(self) -> int:
        return 0


def actor_process(title: str) -> psutil.Process:
    """The process of this script's Ray (a descendant of this one) titled ``ray::<title>`` (or
    ``ray::<title>.<method>``); other runs' actors on the machine carry the same titles."""
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if cmdline and cmdline[0].startswith(f"ray::{title}"):
            return proc
    raise SystemExit(f"no process titled ray::{title} among this script's descendants")


def figures(proc: psutil.Process) -> str:
    cpu = proc.cpu_times()
    return f"RSS {proc.memory_info().rss / 2**20:.0f} MiB, CPU {cpu.user + cpu.system:.2f} s"


def torch_loaded() -> bool:
    """Whether the aggregator's process has imported torch (its shared library is mapped)."""
    return any("libtorch" in m.path for m in actor_process("AggregatorActor").memory_maps())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy", nargs="?", default="strategy=fedavg")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--checkpoint", action="store_true")
    args = parser.parse_args()
    strategy = args.strategy.split("=", 1)[1]

    ensure_ray(ResourcesConfig())
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    bare = BareActor.remote()
    ray.get(bare.ping.remote(), timeout=120)
    setup = AggregatorSetup(strategy=StrategyConfig(name=strategy), objective=ObjectiveConfig(),
                            num_clients=10, client_states_in_memory=10)
    run_dir = tempfile.mkdtemp(prefix="aggregator-memory-")
    start = time.perf_counter()
    aggregator = ray.remote(AggregatorActor).options(num_cpus=0, scheduling_strategy=here).remote(
        setup, None, run_dir)
    flat_layout, rng = layout(), np.random.default_rng(0)
    ray.get(aggregator.set_global.remote(random_state(rng, flat_layout)), timeout=120)
    ready_s = time.perf_counter() - start
    for server_round in range(1, args.rounds + 1):
        cohort = [(c, 10 + c) for c in range(args.clients)]
        ray.get(aggregator.objectives.options(num_returns=len(cohort)).remote(
            server_round, [c for c, _ in cohort]), timeout=120)
        ray.get(aggregator.begin_round.remote(server_round, cohort), timeout=120)
        pairs = []
        for client, n in cohort:
            pairs += [FitReport(client_id=client, num_examples=n), ray.put(random_state(rng, flat_layout))]
        ray.get(aggregator.add_results.remote(server_round, *pairs), timeout=120)
        ray.get(aggregator.close_round.remote(server_round, []), timeout=120)
    proc = actor_process("AggregatorActor")
    print(f"python {sys.version.split()[0]}, fedray from {sys.modules['fedray'].__file__}")
    print(f"bare actor:  {figures(actor_process('BareActor'))}")
    print(f"aggregator ({strategy}, {args.rounds} rounds of {args.clients}): {figures(proc)}; "
          f"ready in {ready_s:.2f} s; torch loaded: {torch_loaded()}")
    if args.checkpoint:
        ray.get(aggregator.save_checkpoint.remote(args.rounds, {}), timeout=120)
        print(f"after a checkpoint: {figures(proc)}; torch loaded: {torch_loaded()}")
    ray.shutdown()


if __name__ == "__main__":
    main()
