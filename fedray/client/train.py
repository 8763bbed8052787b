"""The local training loop a client runs on its own data: pure torch, no Ray.

``local_train`` loads nothing and returns nothing but statistics: the caller loads the global adapter
before and reads the adapter after. Batches are drawn from a generator seeded per (round, client), so a
fit is reproducible on CPU.

There is one loop. How its steps run is a :class:`Steps` object: the plain PyTorch one here, or
DeepSpeed's (:class:`fedray.client.deepspeed.ZeroSteps`), which wraps the model in a ZeRO engine, lets the
engine do backward and the optimizer step, splits each batch over a group's ranks and gathers ZeRO-3's
partitioned params when the loop reads them. :class:`Trainer` runs a fit with one kind of steps.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from fedray.client.objectives import AdapterState, LocalObjective, ObjectiveRun
from fedray.config.schema import TrainConfig
from fedray.lazy import lazy_import

if TYPE_CHECKING:
    from fedray.models.collate import Collator, Encodings

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)


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


class Steps:
    """How one fit's optimizer steps run: plain PyTorch on the model as it is. One object per fit.

    The loop calls, in order: :meth:`make_optimizer`, :meth:`start` (before the first step), then per batch
    :meth:`my_rows`, :meth:`loss` and :meth:`update`, and at the end :meth:`batch_losses` and
    :meth:`whole_params` (around reading the trained params), and :meth:`finish` whatever happened.
    """

    def make_optimizer(self, params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
        return make_optimizer(params, cfg)

    def start(self, model: Any, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
              cfg: TrainConfig, run: ObjectiveRun) -> torch.device:
        """Prepare the steps; return the device batches go to."""
        self.optimizer, self.params = optimizer, params
        return params[0].device

    def my_rows(self, batch: np.ndarray) -> tuple[np.ndarray, bool]:
        """The rows of ``batch`` this process computes, and whether they count (all of them, here)."""
        return batch, True

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor], run: ObjectiveRun,
             counts: bool) -> torch.Tensor:
        """The objective's loss on ``batch``."""
        return run.loss(model, model(**batch).loss)

    def update(self, model: Any, loss: torch.Tensor, run: ObjectiveRun, cfg: TrainConfig) -> None:
        """Backward, the objective's gradient edit, clipping and the optimizer step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.after_backward(model)
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.optimizer.step()

    def batch_losses(self, losses: list[float]) -> list[float]:
        """Each step's loss over the whole batch (this process computed all of it)."""
        return losses

    def whole_params(self) -> AbstractContextManager:
        """A block in which the trainable params hold their whole values (they always do, here)."""
        return nullcontext()

    def finish(self, model: Any) -> None:
        """Undo what :meth:`start` did to the model (nothing, here)."""


def local_train(
    model: Any,
    collator: Collator,
    rows: Sequence[Mapping[str, Any]] | Encodings,
    cfg: TrainConfig,
    objective: LocalObjective,
    global_state: AdapterState,
    rng: np.random.Generator,
    steps: Steps | None = None,
) -> TrainStats:
    """Train ``model``'s trainable (adapter) params on ``rows`` in place, with plain or ``steps``' steps.

    The model is left in training mode, without gradients: whatever evaluates it next switches it to eval
    (:func:`~fedray.client.evaluate.generate_answers` and the option scorer do), so a run of fits pays
    for no mode switch between them.

    ``rows`` are sample rows (encoded at every step, as they come) or prepared
    :class:`~fedray.models.collate.Encodings` (a step then only selects, pads and stacks).
    """
    from fedray.models.collate import input_dtype  # model code: imported where a model trains

    steps = steps or Steps()
    samples = collator.encodings(rows)
    params = [p for p in model.parameters() if p.requires_grad]
    num_steps = num_local_steps(cfg, len(samples))
    run = objective.begin(model, global_state)
    optimizer = steps.make_optimizer(params, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, num_steps))
    try:
        device = steps.start(model, params, optimizer, cfg, run)
        dtype = input_dtype(model)
        if not model.training:  # consecutive fits skip the walk over every module (0.6 ms, tiny model)
            model.train()
        losses, lrs = [], []
        for idx in batch_indices(len(samples), cfg.batch_size, num_steps, rng):
            mine, counts = steps.my_rows(idx)
            batch = move_batch(collator.stack_train([samples.encoded(i) for i in mine]), device, dtype)
            loss = steps.loss(model, batch, run, counts)
            lrs.append(optimizer.param_groups[0]["lr"])
            steps.update(model, loss, run, cfg)
            scheduler.step()
            losses.append(float(loss.detach()))
        losses = steps.batch_losses(losses)
        with steps.whole_params():
            extras = run.extras(model, num_steps, float(np.mean(lrs)))
    finally:
        for param in params:  # the next virtual client starts without this one's gradients
            param.grad = None
        steps.finish(model)
    return TrainStats(num_examples=len(samples), steps=num_steps, mean_loss=float(np.mean(losses)),
                      last_loss=losses[-1], extras=extras)


class Trainer:
    """Runs a client's fits (``train.engine``): the one loop with this trainer's kind of steps.

    Between fits the model is a plain (unwrapped, unpartitioned) torch module, so the actor can evaluate
    it and load the next adapter with :func:`~fedray.models.lora.set_adapter_state` whatever the trainer.
    """

    def new_steps(self) -> Steps:
        """The steps of one fit."""
        return Steps()

    def fit(self, model: Any, collator: Collator, rows: Sequence[Mapping[str, Any]] | Encodings,
            cfg: TrainConfig,
            objective: LocalObjective, global_state: AdapterState,
            rng: np.random.Generator) -> tuple[TrainStats, AdapterState]:
        """Train ``model`` (its global adapter already loaded); return stats and the new adapter."""
        from fedray.models.lora import get_adapter_state  # model code: imported where a model trains

        stats = local_train(model, collator, rows, cfg, objective, global_state, rng, self.new_steps())
        return stats, get_adapter_state(model)
