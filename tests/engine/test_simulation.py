"""End-to-end runs on a local Ray cluster (2 CPUs) with the tiny model and a small digits subset."""

from __future__ import annotations

import pytest
import torch

from fedray.config import load_scenario, scenario_from_dict
from fedray.data.manifest import read_manifest
from fedray.engine.adapter_files import read_adapter
from fedray.engine.history import read_history
from fedray.engine.simulation import Simulation
from fedray.errors import SchedulingError

pytestmark = pytest.mark.ray


def small_scenario(**federation):
    raw = {
        "name": "e2e", "seed": 3,
        "data": {"source": "digits", "max_train_samples": 120, "max_test_samples": 24},
        "partition": {"name": "dirichlet", "num_clients": 3, "alpha": 1.0, "min_client_size": 10},
        "model": {"max_length": 48},
        "lora": {"rank": 4, "modules_to_save": ["multi_modal_projector"]},
        "train": {"local_steps": 2, "batch_size": 4, "lr": 3e-3},
        "federation": {"rounds": 2, "clients_per_round": 3, **federation},
        "eval": {"every": 1, "batch_size": 12, "max_new_tokens": 3, "save_predictions": True},
        "resources": {"actors": 2, "cpus_per_actor": 0.5},
    }
    return scenario_from_dict(raw)


@pytest.fixture(scope="module")
def finished_run(ray_cluster, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    sim = Simulation(small_scenario(), run_dir)
    summary = sim.execute()
    return sim, summary, run_dir


def test_two_round_run_writes_history_manifest_config_and_adapter(finished_run):
    sim, summary, run_dir = finished_run
    history = read_history(run_dir / "history.jsonl")
    assert [h["round"] for h in history] == [0, 1, 2]
    for record in history[1:]:
        assert record["clients"] == [0, 1, 2] and record["failures"] == []
        assert record["train_loss"] > 0
        assert set(record["time_s"]) >= {"fit", "aggregate", "eval"}
        assert 0.0 <= record["eval"]["accuracy"] <= 1.0 and record["eval"]["n"] == 24
    manifest = read_manifest(run_dir / "manifest.json")
    assert sum(c["num_samples"] for c in manifest["clients"]) == 120
    assert load_scenario(run_dir / "config.yaml") == sim.scenario  # reproducible from the run dir
    adapter = read_adapter(run_dir, "global_adapter")
    assert set(adapter) == set(sim.pool_adapter_keys)
    assert summary.final_eval == history[-1]["eval"]


def test_only_adapter_tensors_cross_process_boundaries(finished_run):
    sim, _, run_dir = finished_run
    keys = sim.pool_adapter_keys
    assert keys and all("lora_" in k or "multi_modal_projector" in k for k in keys)
    adapter_bytes = sim.adapter_nbytes
    model_bytes = sim.pool.info[0]["total_params"] * 4 if sim.pool else None
    history = read_history(run_dir / "history.jsonl")
    for record in history[1:]:
        # three fits: the global adapter goes down three times, three adapters come back
        assert record["bytes_down"] == 3 * adapter_bytes
        assert record["bytes_up"] == 3 * adapter_bytes
        assert record["bytes_sent"] == record["bytes_down"] + record["bytes_up"]
    assert model_bytes is None or adapter_bytes < model_bytes / 2


def test_global_adapter_changes_and_same_config_gives_same_numbers(finished_run, tmp_path):
    sim, _, run_dir = finished_run
    first = read_history(run_dir / "history.jsonl")
    Simulation(small_scenario(), tmp_path).execute()
    second = read_history(tmp_path / "history.jsonl")
    assert [r["train_loss"] for r in first] == [r["train_loss"] for r in second]
    assert [r["eval"] for r in first] == [r["eval"] for r in second]
    a = read_adapter(run_dir, "global_adapter")
    b = read_adapter(tmp_path, "global_adapter")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_run_dir_adapter_loads_with_peft_on_the_base_rebuilt_from_its_config(finished_run):
    from peft import PeftModel

    from fedray.engine.export import build_run_base, wrapped_run_model

    _, _, run_dir = finished_run
    fedray_model, _ = wrapped_run_model(run_dir, "final")
    peft_model = PeftModel.from_pretrained(build_run_base(run_dir).model, run_dir / "global_adapter")
    input_ids = torch.arange(5, 25).reshape(2, 10)
    with torch.no_grad():
        expected = fedray_model.eval()(input_ids=input_ids).logits
        got = peft_model.eval()(input_ids=input_ids).logits
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    for written in (run_dir / "global_adapter").iterdir():  # written by the aggregator actor, readable by all
        assert written.stat().st_mode & 0o777 == 0o644, written


def test_each_evaluated_round_keeps_its_test_answers(finished_run):
    from fedray.engine.predictions import prediction_rounds, read_predictions

    _, _, run_dir = finished_run
    history = read_history(run_dir / "history.jsonl")
    assert prediction_rounds(run_dir) == [0, 1, 2]
    records = list(read_predictions(run_dir, 2))
    assert len(records) == history[-1]["eval"]["n"] == 24
    assert {"id", "prompt", "generated", "parsed", "answer", "correct", "valid"} <= set(records[0])
    assert records[0]["prompt"].startswith("<image>\n")  # digits: an image and the question
    accuracy = sum(r["correct"] for r in records) / len(records)
    assert accuracy == pytest.approx(history[-1]["eval"]["accuracy"])
    invalid_rate = sum(not r["valid"] for r in records) / len(records)
    assert invalid_rate == pytest.approx(history[-1]["eval"]["invalid_rate"])


def test_round_deadline_turns_fits_into_failures_and_stops_below_quorum(ray_cluster, tmp_path):
    sim = Simulation(small_scenario(round_timeout_s=0.001), tmp_path)
    with pytest.raises(SchedulingError, match="min_fit_clients"):
        sim.execute()
    history = read_history(tmp_path / "history.jsonl")
    assert history[-1]["round"] == 1
    assert {f["client_id"] for f in history[-1]["failures"]} == {0, 1, 2}
    assert all("timed out" in f["reason"] for f in history[-1]["failures"])
