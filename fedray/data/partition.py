"""Partitioners: split the training rows over clients, by registered name.

Every partitioner returns one sorted ``int64`` array of row indices per client; the arrays are disjoint,
cover every row exactly once, and depend only on the labels, the config and the seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from fedray.config.schema import PartitionConfig
from fedray.errors import DataError
from fedray.registry import Registry
from fedray.seeding import derive_rng

PartitionFn = Callable[[np.ndarray, PartitionConfig, int], list[np.ndarray]]

PARTITIONERS: Registry[PartitionFn] = Registry("partitioner")
#: The FedMLLM scripts' own splits (``partition.mode: fedmllm``), reproduced for the same seed.
FEDMLLM_PARTITIONERS: Registry[PartitionFn] = Registry("partitioner with mode fedmllm")

#: Dirichlet redraws before giving up on ``min_client_size``.
MAX_ATTEMPTS = 1000


def partition(labels: np.ndarray, cfg: PartitionConfig, seed: int) -> list[np.ndarray]:
    """Split rows ``0..len(labels)-1`` over ``cfg.num_clients`` clients with partitioner ``cfg.name``."""
    labels = np.asarray(labels)
    n = len(labels)
    needed = cfg.num_clients * cfg.min_client_size
    if needed > n:
        # Checked up front for every partitioner: no amount of redrawing can satisfy it.
        raise DataError(f"{cfg.num_clients} clients × min_client_size {cfg.min_client_size} need ≥ "
                        f"{needed} samples but the training split has {n}; lower partition.num_clients "
                        "or partition.min_client_size")
    fn = PARTITIONERS.get(cfg.name)
    if cfg.mode == "fedmllm":
        fn = FEDMLLM_PARTITIONERS.get(cfg.name)
    parts = fn(labels, cfg, seed)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


@PARTITIONERS.register("iid")
def iid_partition(labels: np.ndarray, cfg: PartitionConfig, seed: int) -> list[np.ndarray]:
    """A seeded permutation cut into ``num_clients`` parts whose sizes differ by at most one."""
    order = derive_rng(seed, "partition", "iid").permutation(len(labels))
    return list(np.array_split(order, cfg.num_clients))


@PARTITIONERS.register("dirichlet")
def dirichlet_partition(labels: np.ndarray, cfg: PartitionConfig, seed: int) -> list[np.ndarray]:
    """Label skew after Hsu et al. 2019, "Measuring the Effects of Non-Identical Data Distribution".

    For each label c, client shares p_c ~ Dir(alpha · 1_K) cut that label's shuffled rows at
    cumsum(p_c) · n_c. Draws are repeated (a fresh stream per attempt) until every client holds at least
    ``min_client_size`` rows.
    """
    best_sizes = np.full(cfg.num_clients, -1)  # sizes of the draw whose smallest client was largest
    for attempt in range(MAX_ATTEMPTS):
        parts = _dirichlet_draw(labels, cfg.num_clients, cfg.alpha, derive_rng(seed, "partition", attempt))
        sizes = np.array([len(p) for p in parts])
        if sizes.min() >= cfg.min_client_size:
            return parts
        if sizes.min() > best_sizes.min():
            best_sizes = sizes
    short = int(np.argmin(best_sizes))
    raise DataError(f"dirichlet partition (alpha={cfg.alpha}, {cfg.num_clients} clients) could not give "
                    f"every client ≥ min_client_size {cfg.min_client_size} samples in {MAX_ATTEMPTS} "
                    f"draws; in the best draw client {short} got {int(best_sizes[short])}. Use a larger "
                    "partition.alpha, fewer partition.num_clients or a smaller partition.min_client_size")


def _dirichlet_draw(labels: np.ndarray, num_clients: int, alpha: float,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """One Dirichlet draw: every label's rows are cut among clients by Dir(alpha) shares."""
    buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        shares = rng.dirichlet(np.full(num_clients, alpha))
        # Cut points from cumulative shares; the last share implicitly takes the remainder.
        cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(np.int64)
        for client, chunk in enumerate(np.split(rows, cuts)):
            buckets[client].append(chunk)
    return [np.concatenate(b) if b else np.empty(0, dtype=np.int64) for b in buckets]


@PARTITIONERS.register("quantity")
def quantity_partition(labels: np.ndarray, cfg: PartitionConfig, seed: int) -> list[np.ndarray]:
    """Quantity skew: client sizes ∝ q ~ Dir(alpha · 1_K), rows IID; redrawn until every client holds
    at least ``min_client_size`` rows (sizes are floored at that minimum after a draw comes close)."""
    n, k = len(labels), cfg.num_clients
    rng = derive_rng(seed, "partition", "quantity")
    order = rng.permutation(n)
    for _ in range(MAX_ATTEMPTS):
        shares = rng.dirichlet(np.full(k, cfg.alpha))
        sizes = np.floor(shares * n).astype(np.int64)
        sizes[-1] = n - sizes[:-1].sum()
        if sizes.min() >= cfg.min_client_size:
            return np.split(order, np.cumsum(sizes)[:-1])
    raise DataError(f"quantity partition (alpha={cfg.alpha}) could not give all {k} clients ≥ "
                    f"{cfg.min_client_size} samples; raise partition.alpha or lower min_client_size")


@FEDMLLM_PARTITIONERS.register("dirichlet")
def fedmllm_dirichlet(labels: np.ndarray, cfg: PartitionConfig, seed: int) -> list[np.ndarray]:
    """FedMLLM's ``data_partition_*.py`` (spec §6.2) on private generators seeded with ``seed``.

    P = dirichlet([alpha]*K, n_labels) from a legacy RandomState; labels in order of first appearance;
    per label: floor(P·n), a minimum-one repair (every client below 1 takes one row from the first client
    with more than 1; all labels, or only the first with ``fedmllm_repair: first`` as for CrisisMMD), the
    last client takes the remainder, and the label's rows (in table order) are cut into contiguous chunks.
    """
    k = cfg.num_clients
    groups = _label_groups_in_first_appearance_order(labels)
    shares = np.random.RandomState(seed).dirichlet([cfg.alpha] * k, len(groups))
    buckets: list[list[np.ndarray]] = [[] for _ in range(k)]
    for label_idx, rows in enumerate(groups):
        splits = np.floor(shares[label_idx] * len(rows)).astype(np.int64)
        if cfg.fedmllm_repair == "all" or label_idx == 0:
            _repair_min_one(splits, label_idx)
        splits[-1] = len(rows) - splits[:-1].sum()
        if splits[-1] < 0:
            raise DataError(f"fedmllm dirichlet: label group {label_idx} has {len(rows)} rows, too few "
                            f"for {k} clients with one each; use fewer clients")
        for client, chunk in enumerate(np.split(rows, np.cumsum(splits)[:-1])):
            buckets[client].append(chunk)
    return [np.concatenate(b) for b in buckets]


@FEDMLLM_PARTITIONERS.register("iid")
def fedmllm_iid(labels: np.ndarray, cfg: PartitionConfig, seed: int) -> list[np.ndarray]:
    """FedMLLM's medical split: ``random.shuffle`` the rows, equal shards, the last takes the remainder."""
    order = list(range(len(labels)))
    random.Random(seed).shuffle(order)
    size = len(order) // cfg.num_clients
    cuts = [size * c for c in range(1, cfg.num_clients)]
    return [np.asarray(p, dtype=np.int64) for p in np.split(np.asarray(order), cuts)]


def _label_groups_in_first_appearance_order(labels: np.ndarray) -> list[np.ndarray]:
    _, first = np.unique(labels, return_index=True)
    ordered = labels[np.sort(first)]
    return [np.flatnonzero(labels == value) for value in ordered]


def _repair_min_one(splits: np.ndarray, label_idx: int) -> None:
    """Give every client below one row a row from the first client holding more than one (in place)."""
    for client in range(len(splits)):
        while splits[client] < 1:
            donors = np.flatnonzero(splits > 1)
            if donors.size == 0:  # the reference loops forever here
                raise DataError(f"fedmllm dirichlet: label group {label_idx} cannot give every client a "
                                "row (no client has two to spare); use fewer clients")
            splits[donors[0]] -= 1
            splits[client] += 1
