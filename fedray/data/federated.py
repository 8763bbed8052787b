"""From a scenario to federated data: the training table, one ClientSpec per client, and the eval sets.

The pipeline, each step seeded from the scenario seed:
1. load the main source (and ``data.secondary`` for task heterogeneity) with their splits;
2. choose which clients do the secondary task (``partition.secondary_clients``, or
   ``partition.task_absent_rate`` where a client may hold both tasks);
3. partition each task's training rows over its clients (``partition``);
4. plan the modalities each client and sample holds (``modality``);
5. write the specs: row indices into one concatenated training table, and per-sample modality masks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fedray.config.schema import Scenario
from fedray.data import fedmllm
from fedray.data.arrow_probe import skip_pandas_probe
from fedray.data.manifest import ClientSpec
from fedray.data.modality import MASK_NAMES, NONE, mask_of, plan_modalities
from fedray.data.partition import partition
from fedray.data.sources import DatasetSplits, load_further, load_primary
from fedray.errors import DataError
from fedray.seeding import derive_rng, derive_seed


@dataclass(frozen=True)
class EvalSet:
    """One held-out table the global model is scored on, with the label names of its task."""

    name: str
    table: pa.Table
    label_names: tuple[str, ...]


@dataclass(frozen=True)
class FederatedData:
    """Everything the engine needs about data; tables are immutable and shipped to actors once."""

    train: pa.Table
    specs: list[ClientSpec]
    label_names: dict[str, tuple[str, ...]]  # task → label names
    validation: EvalSet | None
    tests: list[EvalSet]  # the main test set first

    @property
    def primary_test(self) -> EvalSet:
        return self.tests[0]


def build_federated_data(s: Scenario) -> FederatedData:
    """Run the whole data pipeline of scenario ``s`` (see the module docstring)."""
    skip_pandas_probe()  # the driver builds tables from Python values and holds no pandas object
    primary = load_primary(s.data, s.seed)
    sources = [primary]
    if _has_second_task(s):
        if s.data.secondary is None:
            raise DataError("partition.secondary_clients or partition.task_absent_rate is set but "
                            "data.secondary names no source for the second task; set data.secondary")
        sources.append(load_further(s.data.secondary, s.data, s.seed))
    train = pa.concat_tables([src.train for src in sources])
    offsets = np.cumsum([0] + [src.train.num_rows for src in sources])
    pieces: list[list[np.ndarray]] = [[] for _ in range(s.partition.num_clients)]
    tasks: list[list[str]] = [[] for _ in range(s.partition.num_clients)]
    for task_idx, assignment in enumerate(_task_shards(s, sources)):
        for client, rows in assignment:
            pieces[client].append(rows + offsets[task_idx])
            tasks[client].append(sources[task_idx].task)
    # A client holding two tasks' shards (the medical mix) holds their rows in table order, as every client.
    parts = [p[0] if len(p) == 1 else np.sort(np.concatenate(p)) for p in pieces]
    task_of = {c: "+".join(t) for c, t in enumerate(tasks)}
    specs = _specs(train, _holdings(sources), parts, task_of, s)
    tests = [EvalSet("test", primary.test, primary.label_names)]
    # A second task without a test split (MedAlpaca with all_train, as the reference uses it) is not scored.
    tests += [EvalSet(src.task, src.test, src.label_names) for src in sources[1:] if src.test.num_rows]
    for extra in s.data.eval_sources:
        further = load_further(extra, s.data, s.seed)
        tests.append(EvalSet(extra.source, further.test, further.label_names))
    validation = EvalSet("validation", primary.validation, primary.label_names) \
        if primary.validation.num_rows else None
    return FederatedData(train=train, specs=specs, label_names=_label_names(sources, task_of),
                         validation=validation, tests=tests)


def _has_second_task(s: Scenario) -> bool:
    return bool(s.partition.secondary_clients) or s.partition.task_absent_rate is not None


def _task_shards(s: Scenario, sources: list[DatasetSplits]) -> fedmllm.TaskShards:
    """Per task, (client, row numbers into that task's table) for every client that holds a shard of it.

    Under ``mode: fedmllm`` with the ``iid`` partitioner a second task follows the reference's medical
    scripts, one seeded ``random`` stream from choosing the clients to cutting the shards
    (:func:`fedray.data.fedmllm.task_single`, :func:`~fedray.data.fedmllm.task_mix`). Otherwise the clients
    of each task are chosen first and each task's rows are partitioned over them on their own.
    """
    p = s.partition
    if len(sources) == 1:
        return [list(enumerate(partition(_labels(sources[0].train), p, s.seed)))]
    if p.task_absent_rate is None and p.secondary_clients >= p.num_clients:
        raise DataError(f"partition.secondary_clients={p.secondary_clients} leaves no client for the main "
                        f"task (num_clients={p.num_clients}); lower it")
    if p.mode == "fedmllm" and p.name == "iid":
        rows = (sources[0].train.num_rows, sources[1].train.num_rows)
        shards = fedmllm.task_mix(p.num_clients, p.task_absent_rate, rows, s.seed) \
            if p.task_absent_rate is not None else \
            fedmllm.task_single(p.num_clients, p.num_clients - p.secondary_clients, rows, s.seed)
        _check_shards(shards, sources, p.min_client_size)
        return shards
    out = []
    for task_idx, (src, clients) in enumerate(zip(sources, _task_owners(s))):
        cfg = dataclasses.replace(p, num_clients=len(clients))
        if task_idx and p.mode == "fedray":
            # The second task is sharded IID, as FedMLLM does (the main partitioner's options do not apply).
            cfg = dataclasses.replace(cfg, name="iid", options={})
        seed = derive_seed(s.seed, "task", task_idx) if task_idx else s.seed
        out.append(list(zip(clients, partition(_labels(src.train), cfg, seed))) if clients else [])
    return out


def _task_owners(s: Scenario) -> list[list[int]]:
    """Client ids doing the main task, then those doing the secondary task, each sorted."""
    n, k2 = s.partition.num_clients, s.partition.secondary_clients
    if s.partition.task_absent_rate is not None:
        return _mix_owners(s)
    if s.partition.mode == "fedmllm":
        main = fedmllm.main_task_clients(n, n - k2, s.seed)
    else:
        main = derive_rng(s.seed, "task_owners").choice(n, size=n - k2, replace=False).tolist()
    main_set = set(main)
    return [sorted(main_set), [c for c in range(n) if c not in main_set]]


def _mix_owners(s: Scenario) -> list[list[int]]:
    """``task_absent_rate``: each client holds each task with chance 1 − q; one with neither gets one by a
    coin flip (the reference's draws under ``mode: fedmllm``, seeded fedray streams otherwise)."""
    n, q = s.partition.num_clients, s.partition.task_absent_rate
    if s.partition.mode == "fedmllm":
        return fedmllm.mix_holders(n, q, s.seed)[0]
    rng = derive_rng(s.seed, "task_mix")
    presence = rng.binomial(1, 1.0 - q, size=(n, 2))  # (client, task)
    coins = rng.random(n)
    for client in np.flatnonzero(presence.sum(axis=1) == 0):
        presence[client, 0 if coins[client] < 0.5 else 1] = 1
    return [np.flatnonzero(presence[:, task]).tolist() for task in (0, 1)]


def _check_shards(shards: fedmllm.TaskShards, sources: list[DatasetSplits], min_size: int) -> None:
    """Every shard holds at least ``partition.min_client_size`` rows, as the partitioners guarantee."""
    for src, assignment in zip(sources, shards):
        short = [client for client, rows in assignment if len(rows) < min_size]
        if short:
            raise DataError(f"task {src.task!r} has {src.train.num_rows} training rows for "
                            f"{len(assignment)} clients, so client(s) {short} would hold fewer than "
                            f"partition.min_client_size={min_size}; use fewer clients, more data or a "
                            "smaller partition.min_client_size")


def _label_names(sources: list[DatasetSplits], task_of: dict[int, str]) -> dict[str, tuple[str, ...]]:
    """Task → label names; a client holding two tasks has a combined task (``a+b``) whose label names are
    the tasks' own where they agree, else none (the manifest then shows raw label values)."""
    names = {src.task: src.label_names for src in sources}
    for task in set(task_of.values()) - set(names):
        parts = {names[t] for t in task.split("+")}
        names[task] = parts.pop() if len(parts) == 1 else ()
    return names


def _specs(train: pa.Table, holdings: tuple[np.ndarray, np.ndarray], parts: list[np.ndarray],
           task_of: dict[int, str], s: Scenario) -> list[ClientSpec]:
    ids = train.column("id").to_pylist()
    plan = plan_modalities([[ids[i] for i in part] for part in parts], s.modality, s.seed)
    has_image, has_text = holdings
    specs = []
    for client, part in enumerate(parts):
        planned = plan.masks_for(client, len(part))
        # What a sample really holds: the plan, less what the source never had (digits carry no text).
        held = tuple(m & mask_of(image=has_image[i], text=has_text[i]) for i, m in zip(part, planned))
        specs.append(ClientSpec(client_id=client, indices=tuple(part.tolist()), task=task_of[client],
                                modalities=_MODALITIES_OF[plan.client_masks[client]], masks=held))
    return specs


#: Client mask → the modality names a spec lists: one shared tuple per mask, not one per client.
_MODALITIES_OF = {mask: tuple(name.split("+")) if mask != NONE else () for mask, name in MASK_NAMES.items()}


def _holdings(sources: list[DatasetSplits]) -> tuple[np.ndarray, np.ndarray]:
    """Per training row: does it carry an image, and text? A text-only QA source (no image and no
    context column, e.g. MedAlpaca) carries its text in the question, so its rows count as text."""
    images, texts = [], []
    for src in sources:
        has_image = np.asarray(src.train.column("image").is_valid())
        has_text = np.asarray(src.train.column("text").is_valid())
        if not has_image.any() and not has_text.any():
            has_text = np.ones_like(has_text)
        images.append(has_image)
        texts.append(has_text)
    return np.concatenate(images), np.concatenate(texts)


def _labels(table: pa.Table) -> np.ndarray:
    return table.column("label").fill_null(-1).to_numpy().astype(np.int64)


__all__ = ["DatasetSplits", "EvalSet", "FederatedData", "build_federated_data"]
