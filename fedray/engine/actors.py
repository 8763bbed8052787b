"""The client actor: one base model, trained or evaluated for whichever virtual client it is handed.

The class is plain Python; :mod:`fedray.engine.pool` wraps them with ``ray.remote`` and the
resources the scenario asks for. A client actor builds its model once, from its
:class:`~fedray.engine.client_setup.ClientSetup`, and then serves whichever virtual client it is handed:
it keeps no per-client state between fits.

Start-up: the engine creates the actors with the set-up only, so they build their models while the
driver builds the data, and hands them the tables later (:meth:`ClientActor.set_data`). The adapter goes
in and out of the model by in-place copies through :class:`~fedray.models.lora.AdapterSlots`, found
once per actor, and leaves as one flat buffer (:class:`~fedray.flat.FlatState`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from typing import Any, Mapping, Sequence

import pyarrow as pa
import torch

from fedray.client.evaluate import generate_answers
from fedray.client.objectives import LocalObjective
from fedray.client.prepared import PreparedStore
from fedray.client.scoring import option_logprobs
from fedray.client.trainers import build_trainer
from fedray.data.arrow_probe import skip_pandas_probe
from fedray.data.modality import CONDITION_MASKS
from fedray.data.prompts import format_choice
from fedray.engine.client_setup import ClientSetup
from fedray.engine.devices import begin_fit, cap_memory, peak_memory_mb, pick_device, release_memory
from fedray.engine.tasks import EvalRequest, EvalShard, FitFailure, FitReport, FitTask
from fedray.flat import FlatState
from fedray.models.base import build_model
from fedray.models.collate import Collator
from fedray.models.features import VisionFeatures
from fedray.models.lora import (
    AdapterState,
    adapter_bytes_breakdown,
    adapter_slots,
    apply_lora,
    peft_adapter_config,
    state_nbytes,
)
from fedray.seeding import derive_rng, derive_seed, torch_seeded

logger = logging.getLogger(__name__)

TRAIN_SPLIT = "train"  # the store's name of the training table; eval sets are "eval-<name>"

__all__ = ["ClientActor", "peak_memory_mb", "pick_device"]


class ClientActor:
    """Holds one LoRA-wrapped base model and trains or evaluates it for any client on request.

    In a group client (``resources.actors_per_client`` > 1) it is one rank of a DeepSpeed data-parallel
    group (:mod:`fedray.engine.group`): every rank runs every fit of its group, and rank 0's report and
    adapter are the client's result.
    """

    def __init__(self, setup: ClientSetup, train: pa.Table | None = None,
                 eval_tables: Mapping[str, pa.Table] | None = None) -> None:
        """Build the model from ``setup``; the tables come now or later through :meth:`set_data`."""
        start = time.perf_counter()
        torch.set_num_threads(setup.torch_threads)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.setup = setup
        self.train: pa.Table | None = None
        self.eval_tables: dict[str, pa.Table] = {}
        self.device = pick_device()
        cap_memory(self.device, setup.gpus_per_actor, setup.cap_gpu_memory)
        self.engine = build_trainer(setup.train.engine)
        self.rank = 0
        self._budgets: dict[str, int] = {}  # eval set → new tokens per answer
        built = build_model(setup.model)
        with torch_seeded(derive_seed(setup.seed, "lora_init")):
            self.model = apply_lora(built.model, setup.lora, built.family).to(self.device)
        self.collator = Collator(built.processor, setup.model.max_length, prompt=setup.prompt)
        self.adapter = adapter_slots(self.model)
        self.build_s = time.perf_counter() - start
        if train is not None:
            self.set_data(train, eval_tables or {})

    def set_data(self, train: pa.Table, eval_tables: Mapping[str, pa.Table],
                 train_needs: Mapping[int, Sequence[int]] | None = None,
                 cache_dir: str | None = None) -> dict[str, Any]:
        """Take the sample tables (the engine builds them while the model loads) as prepared samples
        (:mod:`fedray.client.prepared`).

        ``train_needs`` (mask → training-row positions, :func:`fedray.client.prepared.train_needs`) are
        prepared now, sharing the work with the other actors through ``cache_dir`` (None: the default
        cache); anything else when first asked for. With ``model.cache_vision_features`` and a frozen
        tower, the tower's output is cached too (:mod:`fedray.models.features`). Returns what was built.
        """
        start = time.perf_counter()
        skip_pandas_probe()  # prepared samples are built from Python values: no pandas (its module doc)
        self.train, self.eval_tables = train, dict(eval_tables)
        features = VisionFeatures.attach(self.model) if self.setup.model.cache_vision_features else None
        self.store = PreparedStore(self.collator, cache_dir, features)
        self.store.add(TRAIN_SPLIT, train, train_needs)
        for name, table in self.eval_tables.items():
            self.store.add(_eval_split(name), table)
        return {"files_built": len(self.store.built), "files_mapped": len(self.store.mapped),
                "vision_features": features is not None, "prepare_s": time.perf_counter() - start}

    def describe(self) -> dict[str, Any]:
        """Facts about this actor (and proof that construction finished)."""
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        return {"pid": os.getpid(), "device": str(self.device), "trainable_params": trainable,
                "total_params": total, "threads": torch.get_num_threads(), "rank": self.rank,
                "adapter_bytes": adapter_bytes_breakdown(self.model),
                "adapter_keys": list(self.adapter.layout.keys), "build_s": self.build_s,
                "adapter_config": peft_adapter_config(self.model)}

    def rendezvous(self) -> tuple[str, int]:
        """Rank 0 of a group: the address and a free port its process group will listen on."""
        import ray

        from fedray.client.deepspeed import free_port

        return ray.util.get_node_ip_address(), free_port()

    def join_group(self, address: tuple[str, int], rank: int, world_size: int) -> int:
        """Join the group's process group as ``rank`` (blocks until every rank has joined)."""
        from fedray.client.deepspeed import init_distributed

        init_distributed(address[0], address[1], rank, world_size)
        self.rank = rank
        return rank

    def initial_adapter(self) -> FlatState:
        return self.adapter.read()

    def fit(self, task: FitTask, global_state: Mapping[str, torch.Tensor],
            objective: LocalObjective | None = None) -> tuple[FitReport, FlatState | AdapterState]:
        """Load the global adapter, train on the client's rows, return (report, new adapter).

        ``objective`` (sent beside the task, from the object store) replaces ``task.objective``. Ranks
        other than 0 of a group return an empty report body and adapter: rank 0's are the client's.
        """
        start = time.perf_counter()
        if objective is not None:
            task = replace(task, objective=objective)
        begin_fit(self.device)
        self.adapter.load(global_state)
        samples = self.store.encodings(TRAIN_SPLIT, task.indices, task.masks)
        rng = derive_rng(task.seed, "batches")
        with torch_seeded(derive_seed(task.seed, "dropout")):
            train = self.setup.train if task.lr is None else replace(self.setup.train, lr=task.lr)
            stats, params = self.engine.fit(self.model, self.collator, samples, train,
                                            task.objective, global_state, rng)
        if task.slowdown > 1.0:  # simulated slow device (system heterogeneity)
            time.sleep((task.slowdown - 1.0) * (time.perf_counter() - start))
        extras, num_examples = (stats.extras, stats.num_examples) if self.rank == 0 else ({}, 0)
        params = params if self.rank == 0 else {}
        report = FitReport(
            client_id=task.client_id, num_examples=num_examples,
            metrics={"train_loss": stats.mean_loss, "last_loss": stats.last_loss,
                     "steps": float(stats.steps)},
            extras=extras, params_nbytes=state_nbytes(params),
            fit_s=time.perf_counter() - start, peak_mem_mb=peak_memory_mb(self.device),
        )
        del samples, stats  # the fit cleared its gradients (local_train)
        release_memory(self.device)
        return report, params

    def fit_chunk(self, tasks: Sequence[FitTask], starts: Sequence[int], objectives: Sequence[int | None],
                  *inputs: Any) -> tuple[list[FitReport | FitFailure], list[FlatState | AdapterState | None]]:
        """Several fits in one call, one after another (:mod:`fedray.engine.chunking`): fit i starts from
        ``inputs[starts[i]]`` with the objective ``inputs[objectives[i]]`` (None: the task's own).

        The inputs are the call's top-level arguments, so Ray resolves them before the call (a global
        adapter shared by every fit is one of them). Returns the reports and the adapters as two lists,
        aligned with ``tasks``; a fit that raises is a :class:`FitFailure` there (adapter None) and the
        others stand, as they would have in calls of their own.
        """
        reports: list[FitReport | FitFailure] = []
        params: list[FlatState | AdapterState | None] = []
        for task, start, objective in zip(tasks, starts, objectives, strict=True):
            try:
                chosen = None if objective is None else inputs[objective]
                report, state = self.fit(task, inputs[start], chosen)
            except Exception as exc:  # this client's failure, not the call's: the fits after it still run
                logger.exception("client %d failed in round %d", task.client_id, task.server_round)
                self.model.zero_grad(set_to_none=True)
                release_memory(self.device)
                reports.append(FitFailure(task.client_id, f"{type(exc).__name__}: {exc}"))
                params.append(None)
                continue
            reports.append(report)
            params.append(state)
        return reports, params

    def evaluate(self, global_state: Mapping[str, torch.Tensor], request: EvalRequest) -> EvalShard:
        """Greedy generations of ``global_state`` for some rows of one eval set under one condition,
        plus option log-likelihoods for multiple-choice rows when asked."""
        self.adapter.load(global_state)
        indices = list(request.indices)
        samples = self.store.encodings(_eval_split(request.set_name), indices,
                                       [CONDITION_MASKS[request.condition]] * len(indices))
        cfg = self.setup.eval
        budget = self._answer_budget(request.set_name)
        generations = generate_answers(self.model, self.collator, samples, cfg.batch_size, budget)
        scores = None
        if request.score_options:
            choices = self.eval_tables[request.set_name].column("choices").take(indices).to_pylist()
            options = [[format_choice(i, c) for i, c in enumerate(row or ())] for row in choices]
            scores = option_logprobs(self.model, self.collator, samples, options, cfg.batch_size)
        return EvalShard(generations=generations, option_logprobs=scores)

    def _answer_budget(self, set_name: str) -> int:
        """New tokens per answer: ``eval.max_new_tokens``, else the set's longest answer (cached per set).

        A budget below the longest answer cuts answers short, and a cut answer ("(C) Ge") parses as
        invalid, so an explicit one that is too small is reported.
        """
        if set_name not in self._budgets:
            longest = max(self.store.answer_lengths(_eval_split(set_name)), default=1)
            chosen = self.setup.eval.max_new_tokens or longest
            if chosen < longest:
                logger.warning("eval.max_new_tokens=%d is below the longest answer of eval set %r (%d "
                               "tokens): those answers are cut short and count as invalid; unset it or "
                               "raise it", chosen, set_name, longest)
            self._budgets[set_name] = chosen
        return self._budgets[set_name]


def _eval_split(set_name: str) -> str:
    return f"eval-{set_name}"
