"""From a scenario to federated data: the training table, one ClientSpec per client, and the eval sets.

The pipeline, each step seeded from the scenario seed:
1. load the main source (and ``data.secondary`` for task heterogeneity) with their splits;
2. choose which clients do the secondary task (``partition.secondary_clients``);
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
    primary = load_primary(s.data, s.seed)
    sources = [primary]
    if s.partition.secondary_clients:
        if s.data.secondary is None:
            raise DataError("partition.secondary_clients is set but data.secondary names no source")
        sources.append(load_further(s.data.secondary, s.data, s.seed))
    train = pa.concat_tables([src.train for src in sources])
    offsets = np.cumsum([0] + [src.train.num_rows for src in sources])
    owners = _task_owners(s)
    parts: list[np.ndarray] = [np.empty(0, np.int64)] * s.partition.num_clients
    for task_idx, (src, clients) in enumerate(zip(sources, owners)):
        cfg = dataclasses.replace(s.partition, num_clients=len(clients))
        if task_idx and s.partition.mode == "fedray":
            # The second task is sharded IID, as FedMLLM does (the main partitioner's options do not apply).
            cfg = dataclasses.replace(cfg, name="iid", options={})
        labels = _labels(src.train)
        for client, part in zip(clients, partition(labels, cfg, derive_seed(s.seed, "task", task_idx)
                                                   if task_idx else s.seed)):
            parts[client] = part + offsets[task_idx]
    task_of = {c: sources[t].task for t, clients in enumerate(owners) for c in clients}
    specs = _specs(train, _holdings(sources), parts, task_of, s)
    tests = [EvalSet("test", primary.test, primary.label_names)]
    tests += [EvalSet(src.task, src.test, src.label_names) for src in sources[1:]]
    for extra in s.data.eval_sources:
        further = load_further(extra, s.data, s.seed)
        tests.append(EvalSet(extra.source, further.test, further.label_names))
    validation = EvalSet("validation", primary.validation, primary.label_names) \
        if primary.validation.num_rows else None
    return FederatedData(train=train, specs=specs, label_names={src.task: src.label_names for src in sources},
                         validation=validation, tests=tests)


def _task_owners(s: Scenario) -> list[list[int]]:
    """Client ids doing the main task, then (if any) those doing the secondary task, each sorted."""
    n, k2 = s.partition.num_clients, s.partition.secondary_clients
    if k2 == 0:
        return [list(range(n))]
    if k2 >= n:
        raise DataError(f"partition.secondary_clients={k2} leaves no client for the main task "
                        f"(num_clients={n}); lower it")
    if s.partition.mode == "fedmllm":
        main = fedmllm.main_task_clients(n, n - k2, s.seed)
    else:
        main = derive_rng(s.seed, "task_owners").choice(n, size=n - k2, replace=False).tolist()
    main_set = set(main)
    return [sorted(main_set), [c for c in range(n) if c not in main_set]]


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
        mask = plan.client_masks[client]
        specs.append(ClientSpec(client_id=client, indices=tuple(int(i) for i in part), task=task_of[client],
                                modalities=tuple(MASK_NAMES[mask].split("+")) if mask != NONE else (),
                                masks=held))
    return specs


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
