"""The FedMLLM reference scripts' random draws, reproduced call for call (``mode: fedmllm``).

FedMLLM (arXiv 2411.14717) splits data, assigns modalities and samples cohorts with the global
``random`` and ``numpy.random`` generators, reseeded as its scripts go. Here every one of those calls is
made on a private generator seeded the same way, so a ``fedmllm``-mode scenario gets the reference's
assignments for the same seed while library code never touches a global RNG. This module holds all of
them; the partitioners, modality scenarios, task split and cohort sampler call it in that mode.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from fedray.errors import DataError


# -- partitions ---------------------------------------------------------------------------------------
def dirichlet_split(labels: np.ndarray, num_clients: int, alpha: float, repair_all: bool,
                    seed: int) -> list[np.ndarray]:
    """The ``data_partition_*.py`` Dirichlet split.

    P = dirichlet([alpha]*K, n_labels) from a legacy RandomState; labels in order of first appearance;
    per label: floor(P·n), a minimum-one repair (every client below 1 takes one row from the first client
    with more than 1; in every label, or only in the first unless ``repair_all``, as for CrisisMMD), the
    last client takes the remainder, and the label's rows (in table order) are cut into contiguous chunks.
    """
    groups = _label_groups_in_first_appearance_order(labels)
    shares = np.random.RandomState(legacy_seed(seed)).dirichlet([alpha] * num_clients, len(groups))
    buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for label_idx, rows in enumerate(groups):
        splits = np.floor(shares[label_idx] * len(rows)).astype(np.int64)
        if repair_all or label_idx == 0:
            _repair_min_one(splits, label_idx)
        splits[-1] = len(rows) - splits[:-1].sum()
        if splits[-1] < 0:
            raise DataError(f"fedmllm dirichlet: label group {label_idx} has {len(rows)} rows, too few "
                            f"for {num_clients} clients with one each; use fewer clients")
        for client, chunk in enumerate(np.split(rows, np.cumsum(splits)[:-1])):
            buckets[client].append(chunk)
    return [np.concatenate(b) for b in buckets]


def iid_split(num_rows: int, num_clients: int, seed: int) -> list[np.ndarray]:
    """The medical split: ``random.shuffle`` the rows, equal shards, the last takes the remainder."""
    return _shards(random.Random(seed), num_rows, num_clients)


def _shards(stream: random.Random, num_rows: int, num_shards: int) -> list[np.ndarray]:
    """``stream.shuffle`` the row numbers and cut ``num_shards`` equal shards, the last taking the remainder
    (the medical scripts' ``get_splits``/``split_data``); no shard and no draw when ``num_shards`` is 0."""
    if num_shards == 0:
        return []
    order = list(range(num_rows))
    stream.shuffle(order)
    size = len(order) // num_shards
    cuts = [size * c for c in range(1, num_shards)]
    return [np.asarray(p, dtype=np.int64) for p in np.split(np.asarray(order, dtype=np.int64), cuts)]


def main_task_clients(num_clients: int, num_main: int, seed: int) -> list[int]:
    """Task heterogeneity: the clients that do the main (image QA) task, as the reference picks them."""
    return random.Random(seed).sample(range(num_clients), num_main)


#: Per task (main, then secondary): (client, row numbers into that task's table), in assignment order.
TaskShards = list[list[tuple[int, np.ndarray]]]


def task_single(num_clients: int, num_main: int, task_rows: tuple[int, int], seed: int) -> TaskShards:
    """``gen_data_medical_vtqa_single.py``: one ``random`` stream seeded with ``seed``.

    ``random.sample`` picks the ``num_main`` main-task (image QA) clients; the same stream then shuffles the
    main task's rows, whose shards go to those clients in sample order, and then the secondary task's rows,
    whose shards go to the other clients in ascending order (the reference lists them as a set difference
    of small ints, which Python iterates in ascending order).
    """
    stream = random.Random(seed)
    main = stream.sample(range(num_clients), num_main)
    rest = [c for c in range(num_clients) if c not in main]
    main_shards = _shards(stream, task_rows[0], len(main))
    return [list(zip(main, main_shards)), list(zip(rest, _shards(stream, task_rows[1], len(rest))))]


def task_mix(num_clients: int, absent_rate: float, task_rows: tuple[int, int], seed: int) -> TaskShards:
    """``gen_data_medical_vtqa_mix.py``: which clients hold the main task, the secondary, or both.

    Presence (client, task) is 1 with chance ``1 − absent_rate``, from ``np.random.binomial(1, 1 − q,
    (n, 2))``; the reference leaves numpy unseeded there, so no run of it can be matched: fedray seeds that
    draw with ``seed``. Then one ``random`` stream seeded with ``seed``: for each client in id order that
    holds neither task, ``random() < 0.5`` gives it the main task, else the secondary; it shuffles the main
    rows into one shard per holder and then the secondary rows likewise; holders take shards in id order.
    (The reference then shuffles each two-task client's samples together, which orders rows inside that
    client only; fedray draws its own batches, so that last draw is not made.)
    """
    holders, stream = mix_holders(num_clients, absent_rate, seed)
    main_shards = _shards(stream, task_rows[0], len(holders[0]))
    return [list(zip(holders[0], main_shards)),
            list(zip(holders[1], _shards(stream, task_rows[1], len(holders[1]))))]


def mix_holders(num_clients: int, absent_rate: float, seed: int) -> tuple[list[list[int]], random.Random]:
    """The medical mix's presence draw and coin flips (see :func:`task_mix`): per task the clients that hold
    it, in id order, and the ``random`` stream positioned after the coins."""
    presence = np.random.RandomState(legacy_seed(seed)).binomial(1, 1.0 - absent_rate, size=(num_clients, 2))
    stream = random.Random(seed)
    for client in range(num_clients):
        if not presence[client].any():
            presence[client, 0 if stream.random() < 0.5 else 1] = 1
    return [np.flatnonzero(presence[:, task]).tolist() for task in (0, 1)], stream


def legacy_seed(seed: int) -> int:
    """``seed`` as numpy's legacy ``RandomState`` takes it (below 2**32): unchanged when it already is (the
    reference's own seeds), else its high 32 bits folded onto its low 32 by XOR (fedray derives 63-bit
    seeds, e.g. for a second task's partition)."""
    return (seed ^ (seed >> 32)) & 0xFFFF_FFFF


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


# -- modality scenarios -------------------------------------------------------------------------------
class ModalityDraws:
    """The reference's draws for the modality scenarios, on generators seeded with the scenario seed.

    (The reference visits client files in ``os.listdir`` order, so its per-sample draws are not
    reproducible anywhere; here they visit clients in id order.)
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._coins: random.Random | None = None

    def sample_uniforms(self, ids: Sequence[Sequence[str]], scenario: str) -> list[list[tuple[float, float]]]:
        """Two uniforms per sample, from one ``random.random`` stream over the clients' samples in order."""
        stream = random.Random(self.seed)
        return [[(stream.random(), stream.random()) for _ in client] for client in ids]

    def chosen_clients(self, num_clients: int, k: int, scenario: str) -> set[int]:
        """``k`` distinct clients: ``random.sample(range(n), k)``."""
        return set(random.Random(self.seed).sample(range(num_clients), k))

    def presence(self, num_clients: int, keep: float, scenario: str) -> np.ndarray:
        """(n, 2) 0/1 per client and modality (image, text): ``np.random.binomial(1, keep, (n, 2))``."""
        return np.random.RandomState(legacy_seed(self.seed)).binomial(1, keep, size=(num_clients, 2))

    def coin(self, sample_id: str, scenario: str) -> float:
        """One uniform per call from a single stream, in the order the samples are visited."""
        if self._coins is None:
            self._coins = random.Random(self.seed)
        return self._coins.random()


# -- cohorts ------------------------------------------------------------------------------------------
def cohort(pool: Sequence[int], clients_per_round: int, server_round: int) -> list[int]:
    """Python's ``random`` seeded with the round, then a sample; its rounds count from 0, so server round
    r uses seed r − 1. The cohorts do not depend on the scenario seed, as in the reference."""
    return sorted(random.Random(server_round - 1).sample(list(pool), clients_per_round))
