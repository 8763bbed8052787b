"""Lean processes: the stand-ins the driver hands Ray list exactly the real actors' methods, and what
the driver's, the aggregator's and a worker's imports pull in (checked in fresh interpreters)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fedray.engine import remote

ROOT = Path(__file__).resolve().parents[2]


def _public_methods(cls: type) -> set[str]:
    return {name for name, value in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def test_the_stand_ins_forward_exactly_the_real_public_methods():
    from fedray.engine.actors import ClientActor
    from fedray.engine.aggregator import AggregatorActor

    assert set(remote.CLIENT_ACTOR_METHODS) == _public_methods(ClientActor)
    assert set(remote.AGGREGATOR_METHODS) == _public_methods(AggregatorActor)
    assert remote.ClientActor.__name__ == "ClientActor"  # the bench finds actors by this name
    assert remote.AggregatorActor.__name__ == "AggregatorActor"


def _imported(code: str) -> dict:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"torch": "torch" in modules, "transformers": "transformers" in modules,
            "models": sorted(m for m in modules if m.startswith("fedray.models")),
            "checks": "fedray.checks" in modules}


@pytest.mark.parametrize("module", ["fedray", "fedray.engine.remote", "fedray.engine.tasks"])
def test_what_every_worker_unpickles_imports_no_torch(module):
    seen = _imported(f"import {module}")
    assert seen == {"torch": False, "transformers": False, "models": [], "checks": False}


def test_the_aggregator_imports_no_model_code_and_no_torch():
    seen = _imported("import fedray.engine.aggregator")
    assert seen == {"torch": False, "transformers": False, "models": [], "checks": False}


def test_the_driver_imports_no_transformers():
    seen = _imported("import fedray.engine.simulation")
    assert not seen["transformers"]


#: What the driver of ``fedray run`` does before Ray starts: the CLI's imports, the registry-aware
#: checks, the scenario load and the Simulation with the CLI's observers (TensorBoard opened too).
_DRIVER = """
import tempfile
from pathlib import Path
import fedray.cli.main, fedray.cli.run, fedray.cli.validate
from fedray.config.load import load_scenario
from fedray.engine.modes import build_run_mode
from fedray.engine.observers import RunStart
from fedray.engine.simulation import Simulation
from fedray.report.tensorboard import TensorBoardLogger
scenario = load_scenario("scenarios/mini.yaml", ["strategy.name=scaffold"])
build_run_mode(scenario)
board = TensorBoardLogger()
sim = Simulation(scenario, Path(tempfile.mkdtemp()) / "run", observers=[board])
board.on_start(RunStart(sim.run.path, scenario, 0, 1))
assert board.enabled
import fedray.checks
"""

HEAVY = ("torch", "transformers", "peft", "deepspeed")


def _heavy_modules(code: str, timeout_s: float = 120) -> list[str]:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout_s,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    return [m for m in modules if m.split(".")[0] in HEAVY]


def test_the_driver_of_a_run_imports_no_torch_transformers_peft_or_deepspeed():
    assert _heavy_modules(_DRIVER) == []


@pytest.mark.parametrize("name", ["fedadam", "scaffold", "krum", "dp"])
def test_checking_a_scenario_builds_the_strategy_without_torch(name):
    """The checks build the strategy's parameters and ask it for round one's objective."""
    code = ("from fedray.config.load import load_scenario\n"
            f"load_scenario('scenarios/mini.yaml', ['strategy.name={name}'])")
    assert _heavy_modules(code) == []


def test_a_bad_scenario_is_still_reported_whole_without_torch():
    code = ("from fedray.config.load import load_scenario\nfrom fedray.errors import ConfigError\n"
            "try:\n    load_scenario('scenarios/mini.yaml', ['strategy.name=fedavgg', 'train.lr=-1'])\n"
            "except ConfigError as err:\n    assert 'fedavg' in str(err) and 'train.lr' in str(err), err\n"
            "else:\n    raise SystemExit('no error')")
    assert _heavy_modules(code) == []


class _FakeContext:
    """What ray.init returns, as far as ensure_ray reads it."""
    address_info = {"session_dir": None}


class _FakeHead:
    """A started head, as far as start_local_ray reads it."""
    address = "127.0.0.1:6379"


def _recorded_ray_init(monkeypatch, runtime) -> list[dict]:
    """``ray.init`` replaced by a recorder: the keyword arguments of each call."""
    calls: list[dict] = []
    monkeypatch.setattr(runtime.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(runtime.ray, "init", lambda **kwargs: calls.append(kwargs) or _FakeContext())
    for key, value in runtime.WORKER_ENV.items():  # ensure_ray sets them: restored after the test
        monkeypatch.setenv(key, value)
    return calls


def test_a_local_ray_is_started_without_dashboard_or_prestarted_workers(monkeypatch):
    from fedray.config.schema import ResourcesConfig
    from fedray.engine import local_ray, runtime

    calls = _recorded_ray_init(monkeypatch, runtime)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # ray.init starts it where the lean head cannot be (tests/engine/test_local_ray.py covers that head)
    monkeypatch.setattr(local_ray, "lean_api_problem", lambda: "not in this test")
    assert runtime.ensure_ray(ResourcesConfig()).started is True
    (kwargs,) = calls
    assert kwargs["include_dashboard"] is False
    assert kwargs["_system_config"] == {"enable_worker_prestart": False,
                                        "prestart_worker_first_driver": False}


@pytest.mark.parametrize("forwarded", [False, True])
def test_the_lean_head_gets_the_lean_settings_and_a_log_monitor_only_for_forwarded_output(monkeypatch,
                                                                                         forwarded):
    from fedray.config.schema import ResourcesConfig
    from fedray.engine import local_ray, runtime

    heads: list[tuple] = []
    calls = _recorded_ray_init(monkeypatch, runtime)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(runtime, "actor_logs_wanted", lambda: forwarded)
    monkeypatch.setattr(local_ray, "start_lean_head", lambda *args: heads.append(args) or _FakeHead())
    monkeypatch.setattr(local_ray, "adopt_as_global_node", lambda node: None)
    assert runtime.ensure_ray(ResourcesConfig()).started is True
    ((num_cpus, system_config, log_monitor),) = heads
    assert system_config == runtime.LEAN_SYSTEM_CONFIG and log_monitor is forwarded
    assert num_cpus == (os.cpu_count() or 1)
    assert calls[0]["address"] == _FakeHead.address and calls[0]["log_to_driver"] is forwarded


def test_joining_a_cluster_leaves_its_settings_alone(monkeypatch):
    from fedray.config.schema import ResourcesConfig
    from fedray.engine import runtime

    calls = _recorded_ray_init(monkeypatch, runtime)
    monkeypatch.setattr(runtime, "require_reachable", lambda address: None)  # no cluster in a test
    runtime.ensure_ray(ResourcesConfig(ray_address="ray://head:10001"))
    assert calls[0]["address"] == "ray://head:10001" and "_system_config" not in calls[0]


@pytest.mark.slow
@pytest.mark.timeout(960)
def test_a_whole_run_leaves_the_driver_without_torch(tmp_path):
    """Start-up, rounds, evaluation, the best adapter, checkpoints and TensorBoard: nothing the driver
    receives from its actors makes it import torch (a minute or two: it starts its own Ray)."""
    code = ("from fedray.cli.main import main\n"
            f"assert main(['run', 'scenarios/mini.yaml', 'federation.rounds=2', 'eval.every=1', "
            f"'federation.checkpoint_every=1', '--run-dir', {str(tmp_path / 'run')!r}]) == 0")
    assert _heavy_modules(code, timeout_s=900) == []
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_the_digits_source_reads_scikit_learns_file_as_load_digits_does_without_importing_it():
    import numpy as np
    from sklearn.datasets import load_digits

    from fedray.data.sources.digits import _digits_arrays

    images, targets = _digits_arrays()
    digits = load_digits()
    assert np.array_equal(images, digits.images) and images.dtype == digits.images.dtype
    assert np.array_equal(targets, digits.target)
    code = "from fedray.data.sources.digits import _digits_arrays\n_digits_arrays()"
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('sklearn' in sys.modules)"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-2000:]


#: A FedAvg (or FedAvgM) aggregator's two rounds in a fresh interpreter, with adapters as FlatStates
#: built without torch (as they reach the actor from the object store): round 1 as expected, round 2
#: with a NaN client (rejected: the fold falls back to the rule's own aggregate) and a failed one. Writes
#: the global buffer after each round to OUT, then the final adapter's files, and prints whether torch
#: was imported.
_AGGREGATOR_ROUNDS = """
import sys
import numpy as np
from fedray.config.schema import ObjectiveConfig, StrategyConfig
from fedray.engine.aggregator import AggregatorActor
from fedray.engine.tasks import AggregatorSetup, FitFailure, FitReport
from fedray.flat import ALIGN, FlatState, Layout, Slot

def layout(dtype, shapes):
    slots, offset, size = [], 0, np.dtype(dtype).itemsize
    for key, shape in shapes:
        nbytes = int(np.prod(shape)) * size
        slots.append(Slot(key, shape, dtype, offset, nbytes))
        offset += -(-nbytes // ALIGN) * ALIGN
    return Layout(tuple(slots), offset)

DTYPE, OBJECTIVE, OUT, STRATEGY = sys.argv[1:5]
LAYOUT = layout(DTYPE, [("a.lora_A.weight", (8, 24)), ("a.lora_B.weight", (24, 8)), ("proj", (7,))])
rng = np.random.default_rng(11)
def flat(scale=1.0):
    values = (rng.standard_normal(LAYOUT.nbytes // np.dtype(DTYPE).itemsize) * scale).astype(DTYPE)
    return FlatState.from_array(LAYOUT, values)

setup = AggregatorSetup(strategy=StrategyConfig(name=STRATEGY), objective=ObjectiveConfig(name=OBJECTIVE),
                        num_clients=6, client_states_in_memory=4)
actor = AggregatorActor(setup, None, OUT)
actor.set_global(flat())
rounds = {1: [(0, 13), (3, 5), (4, 21)], 2: [(1, 8), (2, 30), (5, 2), (3, 9)]}
for server_round, expected in rounds.items():
    objectives = actor.objectives(server_round, [c for c, _ in expected])
    actor.begin_round(server_round, expected)
    arrived = list(reversed(expected)) if server_round == 1 else expected[:3]
    for client, n in arrived:
        params = flat(0.1)
        if server_round == 2 and client == 2:
            params.typed_array()[5] = np.nan
        actor.add_result(server_round, FitReport(client_id=client, num_examples=n), params)
    failures = [] if server_round == 1 else [FitFailure(3, "timed out")]
    print("METRICS", server_round, actor.close_round(server_round, failures))
    actor.get_global().buffer.tofile(f"{OUT}/global-{server_round}.bin")
actor.save_adapter("global_adapter", None, {"r": 8})
print("TORCH", "torch" in sys.modules)
"""


def _torch_rounds(strategy_name: str, dtype: str, out: Path) -> list[bytes]:
    """The same two rounds through the torch path: dict states aggregated tensor by tensor;
    the final adapter written from those tensors into ``out``."""
    import numpy as np
    import torch

    from fedray.engine.adapter_files import write_adapter_dir
    from fedray.flat import FlatState, Layout
    from fedray.strategies import ClientFailure, ClientResult, build_strategy

    strategy, rng = build_strategy(strategy_name), np.random.default_rng(11)
    layout = Layout.of({"a.lora_A.weight": torch.zeros(8, 24, dtype=getattr(torch, dtype)),
                        "a.lora_B.weight": torch.zeros(24, 8, dtype=getattr(torch, dtype)),
                        "proj": torch.zeros(7, dtype=getattr(torch, dtype))})

    def state(scale=1.0):
        values = (rng.standard_normal(layout.nbytes // np.dtype(dtype).itemsize) * scale).astype(dtype)
        return FlatState.from_array(layout, values).to_dict()

    global_state = state()
    buffers = []
    for server_round, cohort in {1: [(0, 13), (3, 5), (4, 21)], 2: [(1, 8), (2, 30), (5, 2)]}.items():
        arrived = list(reversed(cohort)) if server_round == 1 else cohort
        params = {client: state(0.1) for client, _ in arrived}
        if server_round == 2:
            params[2]["a.lora_A.weight"].view(-1)[5] = float("nan")
        results = [ClientResult(c, n, params[c]) for c, n in cohort]
        failures = [] if server_round == 1 else [ClientFailure(3, "timed out")]
        global_state, _ = strategy.aggregate_fit(server_round, global_state, results, failures)
        buffers.append(FlatState.pack(global_state, layout).buffer.tobytes())
    write_adapter_dir(out, dict(global_state), {"r": 8})
    return buffers


@pytest.mark.parametrize("strategy, dtype, objective", [("fedavg", "float32", "plain"),
                                                        ("fedavg", "float16", "fedprox"),
                                                        ("fedavg", "float32", "adaptive_prox"),
                                                        ("fedavgm", "float32", "plain")])
def test_a_mean_rule_aggregator_needs_no_torch_for_rounds_or_its_adapter_file_and_matches_torch(
        tmp_path, strategy, dtype, objective):
    args = [dtype, objective, str(tmp_path), strategy]
    done = subprocess.run([sys.executable, "-c", _AGGREGATOR_ROUNDS, *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "TORCH False" in lines, done.stdout
    assert "METRICS 2 {'num_results': 2.0, 'num_failures': 1.0, 'num_rejected': 1.0}" in lines
    want = _torch_rounds(strategy, dtype, tmp_path / "torch_adapter")
    got = [(tmp_path / f"global-{r}.bin").read_bytes() for r in (1, 2)]
    assert got == want
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        written, from_torch = tmp_path / "global_adapter" / name, tmp_path / "torch_adapter" / name
        assert written.read_bytes() == from_torch.read_bytes(), name


@pytest.mark.parametrize("checkpoints", [False, True])
def test_a_run_with_checkpoints_warms_torch_during_its_first_round_and_one_without_never(checkpoints):
    """The checkpoint writer needs torch: with checkpoints on, the aggregator imports it on a background
    thread from the first round's begin (not at the first checkpoint, which the driver waits for)."""
    code = f"""
import sys
from fedray.config.schema import ObjectiveConfig, StrategyConfig
from fedray.engine.aggregator import AggregatorActor
from fedray.engine.tasks import AggregatorSetup
setup = AggregatorSetup(strategy=StrategyConfig(name="fedavg"), objective=ObjectiveConfig(name="plain"),
                        num_clients=2, client_states_in_memory=2, checkpoints={checkpoints})
actor = AggregatorActor(setup, None, sys.argv[1])
before = "torch" in sys.modules
actor.begin_round(1, [(0, 4), (1, 4)])
if actor.checkpoint_writer is not None:
    actor.checkpoint_writer.thread.join(120)
print(before, "torch" in sys.modules)
"""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", code, out], capture_output=True, text=True, timeout=180,
                              cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", str(checkpoints)]
