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


def _cfg(**kw) -> PartitionConfig:
    base = {"name": "dirichlet", "num_clients": 10, "alpha": 0.5, "min_client_size": 10}
    return PartitionConfig(**{**base, **kw})


@pytest.mark.parametrize("name", ["iid", "dirichlet"])
def test_disjoint_complete_sorted(name: str) -> None:
    parts = partition(LABELS, _cfg(name=name), seed=0)
    assert len(parts) == 10
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0), "each part is sorted with no duplicates"
    allrows = np.concatenate(parts)
    assert len(allrows) == len(LABELS), "no row is assigned twice"
    np.testing.assert_array_equal(np.sort(allrows), np.arange(len(LABELS)))


@pytest.mark.parametrize("name", ["iid", "dirichlet"])
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
