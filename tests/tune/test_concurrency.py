"""fedray's Tune configuration on a real (trivial) Tune run: the concurrency limit holds, MLflow logs to a
local file store offline, and the saved state is signed so that it verifies."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from fedray.tune import space_from_dict
from fedray.tune.trainable import sweep_callbacks, tune_config
from fedray.tune.trust import SIGNATURE_FILE, verify_state

pytestmark = pytest.mark.ray

MINI = str(Path(__file__).resolve().parents[2] / "scenarios" / "mini.yaml")


def test_max_concurrent_trials_one_runs_trials_one_at_a_time(ray_cluster, tmp_path, caplog, monkeypatch):
    from ray import tune

    monkeypatch.setenv("RAY_CHDIR_TO_TRIAL_DIR", "0")

    # defined here so that Ray pickles it by value (workers cannot import this test module)
    def timed_trial(config: dict) -> None:
        """Records when it ran, sleeps so that overlapping trials would be caught, reports once."""
        from ray import tune

        start = time.time()
        time.sleep(1.5)
        Path(config["log_dir"], f"{config['train.lr']}.json").write_text(
            json.dumps({"start": start, "end": time.time()}))
        tune.report({"server_round": 1, "train_loss": config["train.lr"]})

    lrs = [0.001, 0.002, 0.003]
    space = space_from_dict({"name": "conc", "scenario": MINI, "metric": "train_loss", "mode": "min",
                             "space": {"train.lr": lrs}, "search": {"name": "grid"},
                             "scheduler": {"name": "none"}, "max_concurrent_trials": 1,
                             "loggers": {"mlflow": {}}})
    experiment = str(tmp_path / "sweeps" / "conc")
    log_dir = tmp_path / "times"
    log_dir.mkdir()
    params = {**space.param_space(), "log_dir": str(log_dir)}
    with caplog.at_level(logging.WARNING):
        tuner = tune.Tuner(  # 3 one-CPU trials on a 2-CPU cluster: only the limit keeps them apart
            timed_trial, param_space=params, tune_config=tune_config(space),
            run_config=tune.RunConfig(name="conc", storage_path=str(tmp_path / "sweeps"), verbose=0,
                                      callbacks=sweep_callbacks(space, experiment)))
        results = tuner.fit()
    assert not results.errors
    assert "will be ignored" not in caplog.text
    spans = sorted(tuple(json.loads(p.read_text()).values()) for p in log_dir.glob("*.json"))
    assert len(spans) == len(lrs)
    for (_, end), (next_start, _) in zip(spans, spans[1:]):
        assert next_start >= end, spans  # never two trials at once

    # MLflow: one run per trial in <sweep>/mlruns, with the reported metric, written offline
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(Path(experiment) / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("conc").experiment_id])
    assert sorted(r.data.metrics["train_loss"] for r in runs) == lrs

    # the state Tune saved is signed, and the signature covers it
    assert (Path(experiment) / SIGNATURE_FILE).exists()
    verify_state(experiment)
