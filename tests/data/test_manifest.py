"""The data manifest: per-client counts add up, skew is reported, and JSON round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedray.config.schema import PartitionConfig
from fedray.data.manifest import (
    ClientSpec,
    build_client_specs,
    build_manifest,
    read_manifest,
    write_manifest,
)
from fedray.data.partition import partition
from fedray.errors import DataError

LABELS = np.repeat(np.arange(3), [50, 30, 20])
NAMES = ("cat", "dog", "bird")


def _specs(name: str, alpha: float = 0.5) -> list[ClientSpec]:
    options = {} if name == "iid" else {"alpha": alpha}
    cfg = PartitionConfig(name=name, num_clients=4, min_client_size=5, options=options)
    return build_client_specs(partition(LABELS, cfg, seed=0), task="animals")


def test_build_client_specs() -> None:
    specs = build_client_specs([np.array([0, 2]), np.array([1])], task="t")
    assert specs == [ClientSpec(0, (0, 2), "t"), ClientSpec(1, (1,), "t")]
    assert all(type(i) is int for i in specs[0].indices)
    assert specs[0].modalities == ("image", "text")
    assert specs[0].num_samples == 2


def test_label_counts_sum_to_sizes(tmp_path: Path) -> None:
    specs = _specs("dirichlet")
    m = write_manifest(tmp_path / "manifest.json", specs, LABELS, NAMES, extra={"seed": np.int64(0)})
    assert m["num_clients"] == 4 and m["num_samples"] == 100
    assert m["label_counts"] == {"cat": 50, "dog": 30, "bird": 20}
    for spec, entry in zip(specs, m["clients"]):
        assert entry["client_id"] == spec.client_id
        assert entry["num_samples"] == len(spec.indices)
        assert sum(entry["label_counts"].values()) == entry["num_samples"]
        assert all(c > 0 for c in entry["label_counts"].values()), "only nonzero counts are listed"
        expected = {NAMES[k]: int((LABELS[list(spec.indices)] == k).sum()) for k in range(3)}
        assert entry["label_counts"] == {k: v for k, v in expected.items() if v}
        assert entry["task"] == "animals" and entry["modalities"] == ["image", "text"]


def test_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "manifest.json"
    written = write_manifest(path, _specs("iid"), LABELS, NAMES, extra={"partition": "iid", "seed": 3})
    assert read_manifest(path) == written
    assert written["extra"] == {"partition": "iid", "seed": 3}
    assert not (tmp_path / "sub" / "manifest.json.tmp").exists()


def test_skew_summary_orders_iid_below_dirichlet(tmp_path: Path) -> None:
    iid = write_manifest(tmp_path / "a.json", _specs("iid"), LABELS, NAMES)["skew"]
    skewed = write_manifest(tmp_path / "b.json", _specs("dirichlet", alpha=0.05), LABELS, NAMES)["skew"]
    assert 0.0 <= iid["mean_tv"] < skewed["mean_tv"] <= 1.0
    assert skewed["max_tv"] >= skewed["mean_tv"]


def test_read_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no data manifest"):
        read_manifest(tmp_path / "nope.json")


def _manifest_client_by_client(specs, labels, names_of):
    """The manifest's per-client entries and overall counts computed the plain way, one client and
    one label at a time: what the one-pass table must reproduce exactly."""
    from fedray.data.manifest import label_skew, modality_counts

    def name(v):
        return names_of_task[v] if 0 <= v < len(names_of_task) else "unlabeled" if v < 0 else str(v)

    def named(values):
        found, counts = np.unique(values, return_counts=True)
        return {name(v): int(c) for v, c in zip(found.tolist(), counts)}

    tvs = label_skew([s.indices for s in specs], labels)
    clients = []
    for spec, tv in zip(specs, tvs):
        names_of_task = names_of[spec.task]
        clients.append({"client_id": spec.client_id, "num_samples": spec.num_samples,
                        "label_counts": named(labels[list(spec.indices)]), "label_tv": round(tv, 6),
                        "modalities": list(spec.modalities), "modality_counts": modality_counts(spec),
                        "task": spec.task})
    overall = {}
    for task in dict.fromkeys(s.task for s in specs):
        names_of_task = names_of[task]
        rows = [i for s in specs if s.task == task for i in s.indices]
        overall.update({f"{task}/{k}": v for k, v in named(labels[rows]).items()})
    return clients, overall, tvs


def test_the_one_pass_counts_equal_the_client_by_client_ones_for_many_clients_tasks_and_masks():
    rng = np.random.default_rng(7)
    labels = rng.integers(-1, 5, size=3000)  # -1: unlabeled rows
    order = rng.permutation(3000)
    cuts = np.sort(rng.choice(np.arange(1, 3000), size=499, replace=False))
    specs = []
    for client, part in enumerate(np.split(order, cuts)):
        part = np.sort(part)
        masks = None if client % 3 == 0 else tuple(int(m) for m in rng.integers(0, 4, size=len(part)))
        specs.append(ClientSpec(client, tuple(int(i) for i in part), task="a" if client % 2 else "b",
                                modalities=("image",) if client % 5 == 0 else ("image", "text"), masks=masks))
    specs.append(ClientSpec(500, (), task="a"))  # an empty client
    names = {"a": ("zero", "one", "two"), "b": ("nul", "een", "twee", "drie", "vier")}
    manifest = build_manifest(specs, labels, names)
    clients, overall, tvs = _manifest_client_by_client(specs, labels, names)
    assert manifest["clients"] == clients
    assert manifest["label_counts"] == overall
    assert manifest["skew"]["mean_tv"] == round(float(np.mean(tvs)), 6)
    assert manifest["skew"]["max_tv"] == round(float(np.max(tvs)), 6)
    assert manifest["num_samples"] == 3000 and manifest["num_clients"] == 501

