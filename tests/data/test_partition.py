"""Invariants of the partitioners: disjoint, complete, seeded, skewed as asked, sizes honoured."""

from __future__ import annotations

import numpy as np
import pytest

from fedray.config.schema import PartitionConfig
from fedray.data.manifest import label_skew
from fedray.data.partition import partition
from fedray.errors import DataError
from fedray.registry import UnknownNameError

# 10 balanced labels, shuffled by a fixed permutation so label order is not row order.
LABELS = np.random.default_rng(1234).permutation(np.repeat(np.arange(10), 100))


def _cfg(name: str = "dirichlet", alpha: float = 0.5, fedmllm_repair: str | None = None,
         **fields) -> PartitionConfig:
    """A partition section; ``alpha`` (and ``fedmllm_repair``) go to the partitioners that take them."""
    options = {} if name == "iid" else {"alpha": alpha}
    if fedmllm_repair is not None:
        options["fedmllm_repair"] = fedmllm_repair
    return PartitionConfig(name=name, options=options, **{"num_clients": 10, "min_client_size": 10, **fields})


@pytest.mark.parametrize("name,mode", [("iid", "fedray"), ("dirichlet", "fedray"), ("quantity", "fedray"),
                                       ("iid", "fedmllm"), ("dirichlet", "fedmllm")])
def test_disjoint_complete_sorted(name: str, mode: str) -> None:
    parts = partition(LABELS, _cfg(name=name, mode=mode, min_client_size=1), seed=0)
    assert len(parts) == 10
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0), "each part is sorted with no duplicates"
    allrows = np.concatenate(parts)
    assert len(allrows) == len(LABELS), "no row is assigned twice"
    np.testing.assert_array_equal(np.sort(allrows), np.arange(len(LABELS)))


@pytest.mark.parametrize("name", ["iid", "dirichlet", "quantity"])
def test_deterministic_for_seed_and_seeds_differ(name: str) -> None:
    a = partition(LABELS, _cfg(name=name), seed=7)
    b = partition(LABELS, _cfg(name=name), seed=7)
    c = partition(LABELS, _cfg(name=name), seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_smaller_alpha_gives_more_label_skew() -> None:
    skewed = np.mean(label_skew(partition(LABELS, _cfg(alpha=0.1), seed=0), LABELS))
    near_iid = np.mean(label_skew(partition(LABELS, _cfg(alpha=100.0), seed=0), LABELS))
    assert near_iid < 0.15
    assert skewed > near_iid + 0.3


def test_min_client_size_honoured() -> None:
    for seed in range(5):
        parts = partition(LABELS, _cfg(alpha=0.3, min_client_size=50), seed=seed)
        assert min(len(p) for p in parts) >= 50


@pytest.mark.parametrize("name", ["iid", "dirichlet"])
def test_too_many_clients_error(name: str) -> None:
    cfg = _cfg(name=name, num_clients=20, min_client_size=10)
    with pytest.raises(DataError) as info:
        partition(LABELS[:100], cfg, seed=0)
    msg = str(info.value)
    assert "20 clients × min_client_size 10 need ≥ 200 samples but the training split has 100" in msg
    assert "partition.num_clients" in msg and "partition.min_client_size" in msg


def test_unsatisfiable_dirichlet_names_short_client_and_fix() -> None:
    # Four clients must each get exactly a quarter of the rows; alpha=0.01 almost never allows it.
    cfg = _cfg(num_clients=4, alpha=0.01, min_client_size=25)
    with pytest.raises(DataError, match=r"client \d+ got \d+.*larger partition\.alpha"):
        partition(np.repeat([0, 1], 50), cfg, seed=0)


def test_iid_sizes_differ_by_at_most_one() -> None:
    parts = partition(LABELS[:103], _cfg(name="iid", num_clients=10, min_client_size=1), seed=3)
    sizes = [len(p) for p in parts]
    assert sum(sizes) == 103
    assert max(sizes) - min(sizes) <= 1


def test_exact_small_cases() -> None:
    # One client holds everything; as many clients as rows gives one row each.
    one = partition(LABELS[:30], _cfg(num_clients=1, min_client_size=1), seed=0)
    np.testing.assert_array_equal(one[0], np.arange(30))
    each = partition(LABELS[:5], _cfg(name="iid", num_clients=5, min_client_size=1), seed=0)
    assert sorted(int(p[0]) for p in each) == [0, 1, 2, 3, 4]
    assert all(len(p) == 1 for p in each)


def test_unknown_partitioner_lists_known() -> None:
    with pytest.raises(UnknownNameError, match="dirichlet, iid"):
        partition(LABELS, _cfg(name="shards"), seed=0)


def test_quantity_skew_keeps_labels_iid_but_sizes_uneven() -> None:
    parts = partition(LABELS, _cfg(name="quantity", alpha=0.5, min_client_size=5), seed=0)
    sizes = np.array([len(p) for p in parts])
    assert sizes.min() >= 5 and sizes.max() > 2 * sizes.min(), sizes
    big = parts[int(np.argmax(sizes))]
    assert len(np.unique(LABELS[big])) == 10, "a large client sees every label"


def _reference_dirichlet(labels: list[int], alpha: float, k: int, seed: int,
                         repair_all: bool) -> list[list[int]]:
    """FedMLLM's data_partition script, as written there (global RNG: fine in a test, not in fedray)."""
    np.random.seed(seed)
    groups: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        groups.setdefault(label, []).append(row)
    proportions = np.random.dirichlet([alpha] * k, len(groups))
    clients: list[list[int]] = [[] for _ in range(k)]
    for label_idx, rows in enumerate(groups.values()):
        splits = [int(p * len(rows)) for p in proportions[label_idx]]
        if repair_all or label_idx == 0:
            for i in range(k):
                while splits[i] < 1:
                    donor = next(j for j in range(k) if splits[j] > 1)
                    splits[donor] -= 1
                    splits[i] += 1
        splits[-1] = len(rows) - sum(splits[:-1])
        start = 0
        for c in range(k):
            clients[c] += rows[start:start + splits[c]]
            start += splits[c]
    return [sorted(c) for c in clients]


@pytest.mark.parametrize("repair", ["all", "first"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 5.0])
def test_fedmllm_dirichlet_reproduces_reference(alpha: float, repair: str) -> None:
    labels = [int(x) for x in np.random.default_rng(5).integers(0, 3, size=300)]
    ours = partition(np.array(labels), _cfg(alpha=alpha, mode="fedmllm", fedmllm_repair=repair,
                                            min_client_size=1), seed=42)
    expected = _reference_dirichlet(labels, alpha, 10, 42, repair_all=repair == "all")
    assert [p.tolist() for p in ours] == expected


def test_fedmllm_dirichlet_exact_small_case() -> None:
    # RandomState(0).dirichlet([1, 1], 2) = [[.388, .612], [.540, .460]]. Label 1 appears first:
    # rows [0, 2, 3, 6] → floor → [1, 2], last takes the rest → [1, 3]; label 0, rows [1, 4, 5, 7] →
    # [2, 1] → [2, 2]; each label's rows are cut into contiguous chunks in row order.
    labels = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    parts = partition(labels, _cfg(num_clients=2, alpha=1.0, mode="fedmllm", min_client_size=1), seed=0)
    assert [p.tolist() for p in parts] == [[0, 1, 4], [2, 3, 5, 6, 7]]


def test_fedmllm_iid_shards_follow_python_shuffle() -> None:
    parts = partition(np.zeros(23, dtype=np.int64), _cfg(name="iid", num_clients=4, mode="fedmllm",
                                                         min_client_size=1), seed=41)
    order = list(range(23))
    import random

    random.Random(41).shuffle(order)
    expected = [sorted(order[0:5]), sorted(order[5:10]), sorted(order[10:15]), sorted(order[15:])]
    assert [p.tolist() for p in parts] == expected
