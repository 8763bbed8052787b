"""The local training loop a client runs on its own data: pure torch, no Ray.

``local_train`` loads nothing and returns nothing but statistics: the caller loads the global adapter
before and reads the adapter after. Batches are drawn from a generator seeded per (round, client), so a
fit is reproducible on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from fedray.client.objectives import AdapterState, LocalObjective
from fedray.config.schema import TrainConfig
from fedray.models.collate import Collator, input_dtype


@dataclass(frozen=True)
class TrainStats:
    num_examples: int
    steps: int
    mean_loss: float
    last_loss: float
    extras: dict[str, Any] = field(default_factory=dict)  # from the objective (e.g. SCAFFOLD variates)


def num_local_steps(cfg: TrainConfig, num_examples: int) -> int:
    """Optimizer steps for one fit: ``local_steps``, or ``ceil(epochs · n / batch_size)``."""
    if cfg.local_steps is not None:
        return cfg.local_steps
    return max(1, math.ceil(cfg.local_epochs * num_examples / cfg.batch_size))


def batch_indices(num_examples: int, batch_size: int, steps: int, rng: np.random.Generator):
    """Yield ``steps`` index batches: shuffled passes over the data, reshuffled each pass."""
    order = rng.permutation(num_examples)
    cursor = 0
    for _ in range(steps):
        if cursor + min(batch_size, num_examples) > num_examples:
            order, cursor = rng.permutation(num_examples), 0
        yield order[cursor: cursor + batch_size]
        cursor += batch_size


def lr_lambda(cfg: TrainConfig, steps: int):
    """Multiplier of ``cfg.lr`` at each step: linear warmup, then constant / linear / cosine decay."""
    warmup = int(cfg.warmup_ratio * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        if cfg.lr_schedule == "linear":
            return 1.0 - progress
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return factor


def move_batch(batch: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype):
    """Move to ``device``; floating tensors (pixel values) take the model's dtype."""
    return {k: v.to(device, dtype=dtype) if v.is_floating_point() else v.to(device)
            for k, v in batch.items()}


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """A fresh local optimizer (state is not kept across rounds, as in the reference)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                             betas=(cfg.adam_beta1, cfg.adam_beta2))


def local_train(
    model: Any,
    collator: Collator,
    rows: Sequence[Mapping[str, Any]],
    cfg: TrainConfig,
    objective: LocalObjective,
    global_state: AdapterState,
    rng: np.random.Generator,
) -> TrainStats:
    """Train ``model``'s trainable (adapter) params on ``rows`` in place."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    steps = num_local_steps(cfg, len(rows))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps))
    device, dtype = params[0].device, input_dtype(model)
    model.train()
    run = objective.begin(model, global_state)
    losses, lrs = [], []
    for idx in batch_indices(len(rows), cfg.batch_size, steps, rng):
        batch = move_batch(collator.train_batch([rows[i] for i in idx]), device, dtype)
        loss = run.loss(model, model(**batch).loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.after_backward(model)
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    model.eval()
    return TrainStats(num_examples=len(rows), steps=steps, mean_loss=float(np.mean(losses)),
                      last_loss=losses[-1], extras=run.extras(model, steps, float(np.mean(lrs))))
