"""Lean processes: the stand-ins the driver hands Ray list exactly the real actors' methods, and what
the driver's, the aggregator's and a worker's imports pull in (checked in fresh interpreters)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
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


def test_the_aggregator_imports_no_model_code():
    seen = _imported("import fedray.engine.aggregator")
    assert not seen["transformers"] and seen["models"] == [] and not seen["checks"]


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
