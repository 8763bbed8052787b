"""The plain one-process PyTorch loop: the fastest honest hand-written baseline for a bench case.

What a researcher writes by hand (the FedMLLM / OpenFedLLM design), done as fast as it honestly goes:
one model built once; every sample of every client the run will sample turned into tensors once, before
timing starts (the processor and tokenizer never run inside a round); then per round the same cohort as
fedray (:func:`~fedray.engine.sampler.sample_cohort`), clients one after another, each loading the global
adapter, running its local AdamW steps on the same seeded batch order as a fedray fit, and handing its
adapter back; FedAvg over the adapters ends the round. It uses the same data pipeline, model, LoRA
initialisation and settings as the case's scenario, so its per-round training losses match fedray's
(up to float reassociation between thread counts): both do the same work.

Also measured here, with one thread and before the loop: the *isolated fit*, each round-1 client's local
training on pre-tensorised batches with nothing around it (a fresh optimizer and its steps; no adapter
load or read-back), after one untimed warm-up fit; the median is reported. ⌈cohort / actors⌉ of those is
the fastest a round on that many one-thread actors can be.

Run as ``python -m fedray.bench.plain_loop SCENARIO.yaml --out RESULT.json`` (``fedray bench`` does), so its
start-up and memory are measured like a ``fedray run``'s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from fedray.client.train import batch_indices, num_local_steps
from fedray.config.schema import Scenario, TrainConfig
from fedray.models.collate import IGNORE_INDEX
from fedray.models.lora import AdapterState
from fedray.seeding import derive_rng, derive_seed

Batch = dict[str, torch.Tensor]


# -- tensors, once --------------------------------------------------------------------------------------
def tensorise(collator: Any, rows: Sequence[Mapping[str, Any]]) -> list[Batch]:
    """Each row as its own one-sample batch of tensors (prompt, answer, label mask, pixels)."""
    return [collator.train_batch([row]) for row in rows]


def stack_batch(samples: Sequence[Batch], pad_id: int) -> Batch:
    """One batch from one-sample batches: per-token tensors right-padded, image tensors concatenated.

    The result equals the collator's batch of the same rows: ``input_ids`` pad with ``pad_id``, ``labels``
    with the ignore index, ``attention_mask`` and any other per-token tensor with 0 (also where a sample
    lacks it); image tensors come from the samples that have an image, in order.
    """
    width = max(s["input_ids"].shape[1] for s in samples)
    per_token = {k for s in samples for k in s if _per_token(s, k)}
    batch: Batch = {}
    for key in dict.fromkeys(k for s in samples for k in s):
        if key in per_token:
            fill = {"input_ids": pad_id, "labels": IGNORE_INDEX}.get(key, 0)
            rows = [s.get(key, torch.zeros_like(s["input_ids"])) for s in samples]
            batch[key] = torch.cat([torch.nn.functional.pad(r, (0, width - r.shape[1]), value=fill)
                                    for r in rows])  # (B, T)
        else:
            batch[key] = torch.cat([s[key] for s in samples if key in s])  # (images, ...)
    return batch


def _per_token(sample: Batch, key: str) -> bool:
    value = sample[key]
    return value.dim() == 2 and value.shape == sample["input_ids"].shape and not value.is_floating_point()


def client_batches(samples: Sequence[Batch], cfg: TrainConfig, seed: int, server_round: int, client: int,
                   pad_id: int) -> list[Batch]:
    """The batches a fedray fit of ``client`` in ``server_round`` draws, in the same seeded order."""
    rng = derive_rng(derive_seed(seed, "fit", server_round, client), "batches")
    steps = num_local_steps(cfg, len(samples))
    return [stack_batch([samples[i] for i in idx], pad_id)
            for idx in batch_indices(len(samples), cfg.batch_size, steps, rng)]


# -- training and averaging -----------------------------------------------------------------------------
def local_fit(model: Any, params: list[torch.nn.Parameter], batches: Sequence[Batch],
              cfg: TrainConfig) -> float:
    """AdamW steps over ``batches`` (a fresh optimizer, as a fedray fit has); the mean loss."""
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(cfg.adam_beta1, cfg.adam_beta2))
    losses = []
    for batch in batches:
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        losses.append(float(loss.detach()))
    return sum(losses) / len(losses)


def fedavg(states: Sequence[AdapterState], weights: Sequence[int]) -> AdapterState:
    """x = Σ_k n_k · x_k / Σ_k n_k per tensor, accumulated in float64."""
    total = float(sum(weights))
    return {key: sum(s[key].to(torch.float64) * (w / total) for s, w in zip(states, weights)).to(first.dtype)
            for key, first in states[0].items()}


# -- the run --------------------------------------------------------------------------------------------
class PlainLoop:
    """The case's model, data and cohorts, prepared once (see the module docstring)."""

    def __init__(self, scenario: Scenario) -> None:
        from fedray.data.federated import build_federated_data
        from fedray.data.modality import mask_rows
        from fedray.data.prompts import build_prompt_style
        from fedray.engine.sampler import sample_cohort
        from fedray.models.base import build_model
        from fedray.models.collate import Collator
        from fedray.models.lora import apply_lora, get_adapter_state
        from fedray.seeding import torch_seeded

        s = self.scenario = scenario
        data = build_federated_data(s)
        built = build_model(s.model)
        with torch_seeded(derive_seed(s.seed, "lora_init")):  # the same initial adapter as fedray's actors
            self.model = apply_lora(built.model, s.lora, built.family)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        collator = Collator(built.processor, s.model.max_length,
                            prompt=build_prompt_style(s.prompts, s.modality.agnostic_prompt))
        self.pad_id = collator.pad_id
        n, m = len(data.specs), s.federation.clients_per_round
        self.cohorts = {r: sample_cohort(s.seed, r, n, m, s.federation.sampler)
                        for r in range(1, s.federation.rounds + 1)}
        self.samples: dict[int, list[Batch]] = {}
        for client in sorted({c for cohort in self.cohorts.values() for c in cohort}):
            spec = data.specs[client]
            masks = spec.masks if spec.masks is not None else (3,) * spec.num_samples
            rows = mask_rows(data.train.take(list(spec.indices)).to_pylist(), masks)
            self.samples[client] = tensorise(collator, rows)
        self.initial = get_adapter_state(self.model)

    def batches(self, server_round: int, client: int) -> list[Batch]:
        return client_batches(self.samples[client], self.scenario.train, self.scenario.seed, server_round,
                              client, self.pad_id)

    def run_round(self, server_round: int, global_state: AdapterState) -> tuple[AdapterState, float]:
        """One round: every cohort client in turn from ``global_state``, then FedAvg; (new state, loss)."""
        from fedray.models.lora import get_adapter_state, set_adapter_state

        states, weights, losses = [], [], []
        for client in self.cohorts[server_round]:
            set_adapter_state(self.model, global_state)
            losses.append(local_fit(self.model, self.params, self.batches(server_round, client),
                                    self.scenario.train))
            states.append(get_adapter_state(self.model))
            weights.append(len(self.samples[client]))
        loss = sum(w * x for w, x in zip(weights, losses)) / sum(weights)
        return fedavg(states, weights), loss

    def isolated_fits(self, server_round: int = 1) -> list[float]:
        """Seconds of each round-``server_round`` cohort client's fit alone (after one untimed warm-up)."""
        from fedray.models.lora import set_adapter_state

        cohort = self.cohorts[server_round]
        prepared = [self.batches(server_round, c) for c in cohort]
        set_adapter_state(self.model, self.initial)
        local_fit(self.model, self.params, prepared[0], self.scenario.train)  # warm-up
        seconds = []
        for batches in prepared:
            set_adapter_state(self.model, self.initial)
            start = time.perf_counter()
            local_fit(self.model, self.params, batches, self.scenario.train)
            seconds.append(time.perf_counter() - start)
        return seconds


def measure(scenario: Scenario, threads: int, isolated_threads: int) -> dict[str, Any]:
    """Prepare; time isolated fits with ``isolated_threads`` threads (first, so that no wider thread pool
    has run before them, as in a one-thread actor); then run every round with ``threads`` threads.

    ``startup_s`` is measured by the caller from launch to ``round1_start_unix``, less ``isolated_total_s``
    (the isolated fits are the bench's, not the loop's).
    """
    torch.set_num_threads(isolated_threads)
    loop = PlainLoop(scenario)
    loop.model.train()
    start = time.perf_counter()
    isolated = loop.isolated_fits()
    isolated_total = time.perf_counter() - start
    torch.set_num_threads(threads)
    state, round_s, losses = loop.initial, [], []
    round1_unix = time.time()
    for server_round in range(1, scenario.federation.rounds + 1):
        start = time.perf_counter()
        state, loss = loop.run_round(server_round, state)
        round_s.append(time.perf_counter() - start)
        losses.append(loss)
    return {"round1_start_unix": round1_unix, "isolated_total_s": isolated_total, "round_s": round_s,
            "train_loss": losses, "threads": threads, "isolated_threads": isolated_threads,
            "isolated_fit_s": isolated, "isolated_fit_median_s": statistics.median(isolated),
            "clients_tensorised": len(loop.samples)}


def main(argv: list[str] | None = None) -> int:
    from fedray.config.load import load_scenario

    parser = argparse.ArgumentParser(prog="python -m fedray.bench.plain_loop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", help="the bench case's scenario YAML")
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the loop (default 2)")
    parser.add_argument("--isolated-threads", type=int, default=1,
                        help="torch threads of the isolated fits (default 1, as one actor has)")
    args = parser.parse_args(argv)
    result = measure(load_scenario(args.scenario), args.threads, args.isolated_threads)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
