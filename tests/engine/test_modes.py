"""Baselines as run modes, validation-based model selection and test conditions, on the tiny model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fedray.engine.adapter_files import has_adapter
from fedray.engine.history import read_history
from fedray.engine.simulation import Simulation
from tests.engine.test_simulation import small_scenario

pytestmark = pytest.mark.ray


def _with(scenario, **fields):
    return replace(scenario, **fields)


def test_zero_shot_evaluates_once_and_trains_nothing(ray_cluster, tmp_path):
    s = _with(small_scenario(), mode="zero_shot")
    summary = Simulation(s, tmp_path).execute()
    history = read_history(tmp_path / "history.jsonl")
    assert [h["round"] for h in history] == [0]
    assert history[0]["eval"]["n"] == 24 and history[0]["bytes_sent"] == 0
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["mode"] == "zero_shot" and written["final_eval"] == summary.final_eval


def test_centralized_pools_every_client_into_one(ray_cluster, tmp_path):
    s = _with(small_scenario(), mode="centralized")
    Simulation(s, tmp_path).execute()
    history = read_history(tmp_path / "history.jsonl")
    assert [h["clients"] for h in history[1:]] == [[0], [0]]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["num_clients"] == 3, "the manifest keeps the federated split it pooled"


def test_local_keeps_each_client_apart_and_reports_the_spread(ray_cluster, tmp_path):
    base = small_scenario()
    s = _with(base, mode="local", eval=replace(base.eval, every=0, at_start=False))
    summary = Simulation(s, tmp_path).execute()
    last = read_history(tmp_path / "history.jsonl")[-1]
    assert last["clients"] == [0, 1, 2]
    per_client = last["client_eval"]
    assert sorted(per_client) == ["0", "1", "2"]
    accs = [m["accuracy"] for m in per_client.values()]
    assert last["eval"]["accuracy"] == pytest.approx(sum(accs) / 3)
    assert "accuracy_std" in last["eval"] and summary.best_round is None


def test_local_picks_its_best_round_on_the_clients_mean_validation(ray_cluster, tmp_path):
    base = small_scenario()
    s = _with(base, mode="local", data=replace(base.data, validation_fraction=0.1))
    summary = Simulation(s, tmp_path).execute()
    history = read_history(tmp_path / "history.jsonl")
    assert all(h["validation"]["n"] > 0 for h in history)
    assert all("accuracy_std" in h["validation"] for h in history[1:])  # a mean over the clients
    best = max(history, key=lambda h: (h["validation"]["accuracy"], -h["round"]))
    assert summary.best_round == best["round"]
    assert not has_adapter(tmp_path, "best_adapter")  # no global adapter to keep


def test_validation_picks_the_best_round_and_conditions_are_scored(ray_cluster, tmp_path):
    base = small_scenario()
    s = _with(base, data=replace(base.data, validation_fraction=0.1),
              eval=replace(base.eval, conditions=("full", "text_only")))
    summary = Simulation(s, tmp_path).execute()
    history = read_history(tmp_path / "history.jsonl")
    assert all(h["validation"]["n"] > 0 for h in history)
    best = max(history, key=lambda h: (h["validation"]["accuracy"], -h["round"]))
    assert summary.best_round == best["round"]
    assert has_adapter(tmp_path, "best_adapter")
    # digits have no text: removing the image leaves the question alone, scored separately.
    assert "text_only/accuracy" in history[-1]["eval"] and "accuracy" in history[-1]["eval"]
