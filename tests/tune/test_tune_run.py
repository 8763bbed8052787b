"""Real sweeps on tiny digits runs: trials are fedray simulations placed in their trial's placement group;
an interrupted sweep resumes."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fedray.cli.main import main
from fedray.config import load_scenario
from fedray.engine.history import read_history

pytestmark = pytest.mark.ray

TINY = {
    "name": "tiny", "seed": 1,
    "data": {"source": "digits", "max_train_samples": 80, "max_test_samples": 12,
             "validation_fraction": 0.1, "max_validation_samples": 12},
    "partition": {"name": "iid", "num_clients": 2, "min_client_size": 10},
    "model": {"max_length": 48},
    "lora": {"rank": 2},
    "train": {"local_steps": 1, "batch_size": 4},
    "federation": {"rounds": 1, "clients_per_round": 2},
    "eval": {"every": 1, "at_start": False, "batch_size": 12, "max_new_tokens": 3},
    "resources": {"actors": 1, "cpus_per_actor": 1.0},
}


def write_sweep(tmp_path: Path, **fields) -> Path:
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")
    sweep = {"name": "t", "scenario": "tiny.yaml", "metric": "val_accuracy", **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # 25-50 s on 2 shared cores
def test_sweep_runs_each_trial_as_a_simulation_inside_its_placement_group(ray_cluster, tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.setenv("RAY_CHDIR_TO_TRIAL_DIR", "0")
    # Each trial reserves the whole 2-CPU cluster: 1 CPU for its driver bundle, 1 for its one client
    # actor. A client actor created outside the trial's placement group would find no free CPU and
    # the pool would never start, so finishing proves the actors land in the group.
    space = write_sweep(tmp_path, space={"train.lr": {"choice": [0.001, 0.003]}}, num_samples=1,
                        scheduler={"name": "asha"}, placement={"driver_cpus": 1.0})
    storage = tmp_path / "tune"
    assert main(["tune", str(space), "--storage", str(storage)]) == 0
    out = storage / "t"
    (row,) = read_rows(out / "results.csv")
    assert row["status"] == "completed" and row["rounds"] == "1" and row["best_round"] == "1"
    (run_dir,) = out.glob("trial_*/run")
    assert [h["round"] for h in read_history(run_dir / "history.jsonl")] == [1]
    assert (run_dir / "summary.json").exists() and (run_dir / "config.yaml").exists()
    best = load_scenario(out / "best_scenario.yaml")
    assert best == load_scenario(run_dir / "config.yaml") and best.data.max_train_samples == 80
    assert "| trial |" in capsys.readouterr().out
    # a second start of the same sweep must be told to resume instead
    assert main(["tune", str(space), "--storage", str(storage)]) == 2
    assert "already exists" in capsys.readouterr().err
    # the report finds the trials' run directories inside the sweep
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert "| fedavg | " in (tmp_path / "report" / "results.md").read_text()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fedray", "tune", *args]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_interrupted_sweep_resumes_keeping_finished_trials(tmp_path):
    """4 trials × 2 rounds (grid, ASHA), one at a time; Ctrl+C once the first trial is done; --resume."""
    space = write_sweep(tmp_path, space={"train.lr": [0.0005, 0.001, 0.002, 0.004]}, search={"name": "grid"},
                        scheduler={"name": "asha", "grace_period": 1}, max_concurrent_trials=1,
                        overrides={"federation.rounds": 2})
    storage = tmp_path / "tune"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(_cli(str(space), "--storage", str(storage)), stdout=log,
                             stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 480
    while not list(storage.glob("t/trial_*/run/summary.json")):
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(1)
    finished = {p.parent.parent.name: p.parent.joinpath("history.jsonl").read_text()
                for p in storage.glob("t/trial_*/run/summary.json")}
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=180) == 130, (tmp_path / "first.log").read_text()[-3000:]
    assert "--resume" in (tmp_path / "first.log").read_text()

    second = subprocess.run(_cli(str(space), "--storage", str(storage), "--resume"), env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    out = storage / "t"
    rows = read_rows(out / "results.csv")
    assert len(rows) == 4 and all(r["status"] in ("completed", "stopped early") for r in rows)
    for trial, history in finished.items():  # trials done before the interruption were not run again
        assert (out / trial / "run" / "history.jsonl").read_text() == history
    for run_dir in out.glob("trial_*/run"):  # a restarted trial's history has each round once
        rounds = [h["round"] for h in read_history(run_dir / "history.jsonl")]
        assert rounds == sorted(set(rounds)) and rounds[0] == 1


@pytest.mark.slow  # about a minute on 2 shared cores
def test_remote_storage_trials_checkpoint_their_run_directory_through_tune(ray_cluster, tmp_path,
                                                                           monkeypatch):
    """A storage URI (file:// here, as s3:// would be) puts the run directory in the trial's working
    directory; each new engine checkpoint travels to the storage as a Tune checkpoint."""
    from fedray.tune.trust import verify_state

    monkeypatch.setenv("RAY_CHDIR_TO_TRIAL_DIR", "0")
    space = write_sweep(tmp_path, scheduler={"name": "none"}, placement={"driver_cpus": 1.0},
                        overrides={"federation.rounds": 2})
    storage = tmp_path / "remote"
    assert main(["tune", str(space), "--storage", storage.as_uri(), "--out", str(tmp_path / "out")]) == 0
    (row,) = read_rows(tmp_path / "out" / "results.csv")
    assert row["status"] == "completed" and row["rounds"] == "2"
    (trial,) = (storage / "t").glob("trial_*")
    (checkpoint,) = trial.glob("checkpoint_*")  # the latest one kept
    assert (checkpoint / "checkpoint.pt").exists()
    assert [h["round"] for h in read_history(checkpoint / "history.jsonl")] == [1, 2]
    verify_state(f"{storage.as_uri()}/t")
