"""Partitioners: split the training rows over clients, by registered name.

Every partitioner returns one sorted ``int64`` array of row indices per client; the arrays are disjoint,
cover every row exactly once, and depend only on the labels, the config and the seed. What every
partitioner shares (``num_clients``, ``min_client_size``) sits on the ``partition`` section; what only
some use (``alpha``) is their parameter dataclass, registered beside them and fed from the section's
inline keys (``partition: {name: dirichlet, alpha: 0.5}``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fedray.config.params import params_or_raise
from fedray.config.schema import PartitionConfig, spec
from fedray.data import fedmllm
from fedray.errors import DataError
from fedray.registry import Registry
from fedray.seeding import derive_rng

PartitionFn = Callable[[np.ndarray, PartitionConfig, Any, int], list[np.ndarray]]

PARTITIONERS: Registry[PartitionFn] = Registry("partitioner")
#: The FedMLLM scripts' own splits (``partition.mode: fedmllm``), reproduced for the same seed.
FEDMLLM_PARTITIONERS: Registry[PartitionFn] = Registry("partitioner with mode fedmllm")
#: ``partition.mode`` → the registry its ``name`` is looked up in.
PARTITIONERS_BY_MODE: dict[str, Registry[PartitionFn]] = {"fedray": PARTITIONERS,
                                                          "fedmllm": FEDMLLM_PARTITIONERS}

#: Dirichlet redraws before giving up on ``min_client_size``.
MAX_ATTEMPTS = 1000


@dataclass(frozen=True)
class DirichletParams:
    alpha: float = spec(0.5, gt=0.0, help="Dirichlet concentration; small = more skew")


@dataclass(frozen=True)
class FedMLLMDirichletParams(DirichletParams):
    fedmllm_repair: Literal["all", "first"] = spec(
        "all", help="repair empty clients in every label (Hateful Memes) or only the first (CrisisMMD)")


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
    registry = PARTITIONERS_BY_MODE[cfg.mode]
    fn = registry.get(cfg.name)
    params = params_or_raise(registry.params_class(cfg.name), cfg.options, "partition")
    parts = fn(labels, cfg, params, seed)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


@PARTITIONERS.register("iid")
def iid_partition(labels: np.ndarray, cfg: PartitionConfig, params: Any, seed: int) -> list[np.ndarray]:
    """A seeded permutation cut into ``num_clients`` parts whose sizes differ by at most one."""
    order = derive_rng(seed, "partition", "iid").permutation(len(labels))
    return list(np.array_split(order, cfg.num_clients))


@PARTITIONERS.register("dirichlet", params=DirichletParams)
def dirichlet_partition(labels: np.ndarray, cfg: PartitionConfig, params: DirichletParams,
                        seed: int) -> list[np.ndarray]:
    """Label skew after Hsu et al. 2019, "Measuring the Effects of Non-Identical Data Distribution".

    For each label c, client shares p_c ~ Dir(alpha · 1_K) cut that label's shuffled rows at
    cumsum(p_c) · n_c. Draws are repeated (a fresh stream per attempt) until every client holds at least
    ``min_client_size`` rows.
    """
    best_sizes = np.full(cfg.num_clients, -1)  # sizes of the draw whose smallest client was largest
    for attempt in range(MAX_ATTEMPTS):
        parts = _dirichlet_draw(labels, cfg.num_clients, params.alpha, derive_rng(seed, "partition", attempt))
        sizes = np.array([len(p) for p in parts])
        if sizes.min() >= cfg.min_client_size:
            return parts
        if sizes.min() > best_sizes.min():
            best_sizes = sizes
    short = int(np.argmin(best_sizes))
    raise DataError(f"dirichlet partition (alpha={params.alpha}, {cfg.num_clients} clients) could not give "
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


@PARTITIONERS.register("quantity", params=DirichletParams)
def quantity_partition(labels: np.ndarray, cfg: PartitionConfig, params: DirichletParams,
                       seed: int) -> list[np.ndarray]:
    """Quantity skew: client sizes ∝ q ~ Dir(alpha · 1_K), rows IID; redrawn until every client holds
    at least ``min_client_size`` rows (sizes are floored at that minimum after a draw comes close)."""
    n, k = len(labels), cfg.num_clients
    rng = derive_rng(seed, "partition", "quantity")
    order = rng.permutation(n)
    for _ in range(MAX_ATTEMPTS):
        shares = rng.dirichlet(np.full(k, params.alpha))
        sizes = np.floor(shares * n).astype(np.int64)
        sizes[-1] = n - sizes[:-1].sum()
        if sizes.min() >= cfg.min_client_size:
            return np.split(order, np.cumsum(sizes)[:-1])
    raise DataError(f"quantity partition (alpha={params.alpha}) could not give all {k} clients ≥ "
                    f"{cfg.min_client_size} samples; raise partition.alpha or lower min_client_size")


@FEDMLLM_PARTITIONERS.register("dirichlet", params=FedMLLMDirichletParams)
def fedmllm_dirichlet(labels: np.ndarray, cfg: PartitionConfig, params: FedMLLMDirichletParams,
                      seed: int) -> list[np.ndarray]:
    """FedMLLM's ``data_partition_*.py`` Dirichlet split (:func:`fedray.data.fedmllm.dirichlet_split`)."""
    return fedmllm.dirichlet_split(labels, cfg.num_clients, params.alpha,
                                   repair_all=params.fedmllm_repair == "all", seed=seed)


@FEDMLLM_PARTITIONERS.register("iid")
def fedmllm_iid(labels: np.ndarray, cfg: PartitionConfig, params: Any, seed: int) -> list[np.ndarray]:
    """FedMLLM's medical split (:func:`fedray.data.fedmllm.iid_split`)."""
    return fedmllm.iid_split(len(labels), cfg.num_clients, seed)
