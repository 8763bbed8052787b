"""Kill the driver (SIGKILL, no clean-up) at seeded random points and resume: the history and the final
adapter equal an uninterrupted run's (timings aside)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from fedray.engine.adapter_files import adapter_weights_path
from fedray.engine.history import read_history
from fedray.engine.simulation import Simulation
from tests.engine.driver_killer import PHASES
from tests.engine.test_resume import _without_timings

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROUNDS = 4
RAW = {
    "name": "killed", "seed": 5,
    "data": {"source": "digits", "max_train_samples": 120, "max_test_samples": 24,
             "validation_fraction": 0.1},
    "partition": {"name": "dirichlet", "num_clients": 4, "alpha": 1.0, "min_client_size": 10},
    "model": {"max_length": 48},
    "lora": {"rank": 4, "modules_to_save": ["multi_modal_projector"]},
    "train": {"local_steps": 2, "batch_size": 4, "lr": 3e-3},
    "strategy": {"name": "scaffold"},  # client states in the store, one kept in memory: spilled files
    "federation": {"rounds": ROUNDS, "clients_per_round": 2, "client_states_in_memory": 1},
    "eval": {"every": 2, "batch_size": 12, "max_new_tokens": 3},
    "resources": {"actors": 2, "cpus_per_actor": 0.5},
}


def _kill_run(run_dir: Path, at_round: int, phase: str, resume: bool, address: str) -> int:
    env = {**os.environ, "RAY_ADDRESS": address, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "tests.engine.driver_killer", json.dumps(RAW), str(run_dir),
           str(at_round), phase] + (["--resume"] if resume else [])
    return subprocess.run(cmd, env=env, cwd=Path(__file__).parents[2], timeout=600,
                          capture_output=True).returncode


@pytest.mark.timeout(1800)  # four start-ups of the tiny model: minutes on a loaded 2-core machine
@pytest.mark.parametrize("seed", [0, 1, 6, 7])  # together: every phase at least once
def test_killed_driver_resumes_to_the_uninterrupted_history(ray_cluster, tmp_path, seed):
    from fedray.config import scenario_from_dict

    scenario = scenario_from_dict(RAW)
    Simulation(scenario, tmp_path / "whole").execute()
    address = ray_cluster.get_runtime_context().gcs_address
    rng = random.Random(seed)
    first = (rng.randint(2, ROUNDS - 1), rng.choice(PHASES[:-1]))
    second = (rng.randint(first[0] + 1, ROUNDS), rng.choice(PHASES))
    cut = tmp_path / "cut"
    assert _kill_run(cut, *first, resume=False, address=address) == -9, f"not killed at {first}"
    assert _kill_run(cut, *second, resume=True, address=address) in (-9, 0), f"resume 1 at {second}"
    Simulation(scenario, cut, resume=True).execute()
    whole = read_history(tmp_path / "whole" / "history.jsonl")
    resumed = read_history(cut / "history.jsonl")
    assert _without_timings(resumed) == _without_timings(whole), f"kills at {first}, {second}"
    for name in ("global_adapter", "best_adapter"):
        assert adapter_weights_path(cut, name).read_bytes() == \
            adapter_weights_path(tmp_path / "whole", name).read_bytes(), name
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["rounds_completed"] == ROUNDS
