"""The data manifest: per-client counts add up, skew is reported, and JSON round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedray.config.schema import PartitionConfig
from fedray.data.manifest import (
    ClientSpec,
    build_client_specs,
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
