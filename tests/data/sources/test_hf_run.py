"""A save_to_disk copy and a parquet copy of one dataset, each run for two rounds through the "hf" source."""

from __future__ import annotations

import pytest

from fedray.config import scenario_from_dict
from fedray.data.manifest import read_manifest
from fedray.engine.history import read_history
from fedray.engine.simulation import Simulation
from tests.data.sources.test_hf import MEME_OPTIONS, meme_splits

pytestmark = pytest.mark.ray


def hf_scenario(root: str):
    return scenario_from_dict({
        "name": "hf-e2e", "seed": 5,
        "data": {"source": "hf", "root": root, **MEME_OPTIONS},
        "partition": {"name": "dirichlet", "num_clients": 2, "alpha": 1.0, "min_client_size": 4},
        "model": {"max_length": 96},
        "lora": {"rank": 4},
        "train": {"local_steps": 1, "batch_size": 4, "lr": 3e-3},
        "federation": {"rounds": 2, "clients_per_round": 2},
        "eval": {"every": 1, "batch_size": 8, "max_new_tokens": 3},
        "resources": {"actors": 1, "cpus_per_actor": 0.5},
    })


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-copies")
    splits = meme_splits(n=12)
    splits.save_to_disk(str(root / "disk"))
    (root / "hub" / "data").mkdir(parents=True)
    for name, split in splits.items():
        split.to_parquet(str(root / "hub" / "data" / f"{name}-00000-of-00001.parquet"))
    return root


def test_save_to_disk_and_parquet_copies_train_and_evaluate_alike(ray_cluster, copies, tmp_path):
    histories = {}
    for copy in ("disk", "hub"):
        run_dir = tmp_path / copy
        Simulation(hf_scenario(str(copies / copy)), run_dir).execute()
        history = read_history(run_dir / "history.jsonl")
        assert [h["round"] for h in history] == [0, 1, 2]
        assert all(h["train_loss"] > 0 for h in history[1:]) and history[-1]["eval"]["n"] == 12
        manifest = read_manifest(run_dir / "manifest.json")
        assert sum(c["num_samples"] for c in manifest["clients"]) == 12
        assert set().union(*(c["label_counts"] for c in manifest["clients"])) <= {"benign", "hateful"}
        histories[copy] = [(h.get("train_loss"), h["eval"]) for h in history]
    assert histories["disk"] == histories["hub"]  # the same samples, whichever way they were stored
