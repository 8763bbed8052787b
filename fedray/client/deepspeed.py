"""The ``deepspeed`` train engine: the one loop of :mod:`fedray.client.train` with ZeRO steps.

DeepSpeed itself is imported only when a fit (or a process group) needs it. A fit wraps the actor's model
in ``deepspeed.initialize`` with the torch optimizer of :func:`~fedray.client.train.make_optimizer` (a
client optimizer, so no DeepSpeed op is JIT-built), trains, and then unwraps the model, so between fits
the actor holds a plain torch module it can evaluate and load the next global adapter into. The engine is
created per fit (its optimizer state is new every fit anyway, as in the torch loop); the process group is
created once per process and reused.

**Loading the global adapter.** The actor sets it on the plain model *before* wrapping, and ZeRO-3
partitions the loaded values. We chose this over ``GatheredParameters(..., modifier_rank=0)`` after
wrapping because ZeRO keeps fp32 master copies of the partitions in its optimizer: an edit after wrapping
would have to be pushed into those too, while a load before wrapping is simply what they are built from.

**Group clients.** With a process group of N ranks (one :class:`~fedray.engine.group.ActorGroup`), every
rank draws the same batch indices from the same seed and trains on its slice
(``np.array_split(batch, N)[rank]``); DeepSpeed averages the gradients. Each rank's task loss is scaled
by N·t_r/t (t_r its answer tokens, t the batch's), so the average is the full batch's token-mean loss
and the result matches a single actor's up to float rounding.

**Objectives.** The wrapper below computes ``ObjectiveRun.loss`` inside the engine's forward, with the
trainable params registered as ZeRO-3 external params, so the proximal term sees whole tensors even
when they are partitioned. ``after_backward`` (SCAFFOLD's gradient correction) runs on the reduced,
full gradients of ZeRO-0; stages ≥ 1 reduce and partition gradients inside backward (``p.grad`` is
None afterwards), so an objective that adjusts gradients is refused there (:func:`gradient_edit_problem`,
the one rule that both the trainer and the scenario check apply).

**CPU optimizer offload** (``offload_optimizer``, ZeRO ≥ 1) uses ``DeepSpeedCPUAdam`` for AdamW: DeepSpeed
JIT-compiles its ``cpu_adam`` op on first use (about a minute, cached under ``~/.cache/torch_extensions``
or ``$TORCH_EXTENSIONS_DIR``). SGD stays torch's (no build).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from fedray.client.objectives import AdapterState, LocalObjective, ObjectiveRun
from fedray.client.train import Steps, Trainer, TrainStats, make_optimizer
from fedray.config.schema import TrainConfig, spec
from fedray.errors import FedRayError
from fedray.lazy import lazy_import

if TYPE_CHECKING:
    from fedray.models.collate import Collator

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeepSpeedParams:
    """The ``deepspeed`` engine's parameters (``train.engine: {name: deepspeed, zero_stage: 3}``)."""

    zero_stage: int = spec(2, ge=0, le=3, help="ZeRO stage (3 shards the LoRA weights too)")
    offload_optimizer: bool = spec(False, help="keep optimizer state in CPU memory (needs ZeRO >= 1)")
    bf16: bool = spec(False, help="bfloat16 mixed precision")

    def problems(self) -> list[str]:
        if self.offload_optimizer and self.zero_stage == 0:
            return ["offload_optimizer needs ZeRO: set train.engine.zero_stage to 1, 2 or 3"]
        return []


def gradient_edit_problem(zero_stage: int, objective: LocalObjective) -> str | None:
    """Why ``objective`` cannot run under ZeRO stage ``zero_stage``, or None when it can.

    ZeRO stages >= 1 reduce and partition gradients inside backward, so an objective that edits gradients
    after backward (SCAFFOLD's client half) would lose its edit.
    """
    if zero_stage < 1 or not objective.adjusts_gradients:
        return None
    return (f"the client objective {type(objective).__name__} corrects gradients after backward, but ZeRO "
            f"stage {zero_stage} reduces and partitions them inside backward, so the correction would be "
            "lost; set train.engine.zero_stage: 0 (or train.engine.name: torch)")


def _deepspeed() -> Any:
    import deepspeed

    # The shm_comm op would be JIT-built (~30 s) on first use; gloo collectives do the same work here.
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    return deepspeed


def free_port() -> int:
    """A TCP port that was free a moment ago (the rendezvous binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def init_distributed(address: str = "127.0.0.1", port: int | None = None, rank: int = 0,
                     world_size: int = 1) -> None:
    """Join (or create) this process's one process group: gloo on CPU, nccl on GPU.

    A process has one default group for its lifetime, so this is a no-op when it exists with the same
    world size, and an error when it exists with another (an actor never changes groups).
    """
    import torch.distributed as dist

    if dist.is_initialized():
        if dist.get_world_size() != world_size:
            raise FedRayError(f"this process already belongs to a process group of "
                              f"{dist.get_world_size()} ranks; it cannot join one of {world_size}")
        return
    port = port or free_port()
    # LOCAL_RANK 0: under Ray each actor sees only its own GPU(s), as cuda:0.
    os.environ.update(MASTER_ADDR=address, MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK="0")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    _deepspeed().init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False,
                                  init_method=f"tcp://{address}:{port}", rank=rank,
                                  world_size=world_size)


def ds_config(params: DeepSpeedParams, train: TrainConfig, world_size: int) -> dict[str, Any]:
    """The DeepSpeed config of one fit: one optimizer step per batch of ``train.batch_size`` rows,
    split over ``world_size`` ranks."""
    micro = max(1, train.batch_size // world_size)
    zero: dict[str, Any] = {"stage": params.zero_stage}
    if params.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    return {
        "train_batch_size": micro * world_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": 1,
        # DeepSpeed clips at 1.0 unless told otherwise; 0 turns clipping off, as max_grad_norm=None does.
        "gradient_clipping": train.max_grad_norm or 0.0,
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,  # SGD with offload runs torch's SGD on the CPU copies
        "bf16": {"enabled": params.bf16},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


@functools.cache
def _with_objective_class() -> type:
    """The class of the module DeepSpeed wraps, defined on first use: its base class is torch's, and
    this module imports torch only when it trains (the driver imports it to check scenarios)."""

    class _WithObjective(torch.nn.Module):
        """The module DeepSpeed wraps: the model's loss, scaled for this rank's share, plus the
        objective's terms, all computed inside forward so ZeRO-3 has the trainable params gathered."""

        def __init__(self, model: Any, run: ObjectiveRun) -> None:
            super().__init__()
            self.model = model
            self.run = run

        def forward(self, batch: Mapping[str, torch.Tensor], scale: float) -> torch.Tensor:
            task_loss = self.model(**batch).loss * scale
            return self.run.loss(self.model, task_loss)

    return _WithObjective


class ZeroSteps(Steps):
    """One fit's steps through a DeepSpeed ZeRO engine (see the module docstring)."""

    def __init__(self, params: DeepSpeedParams, overrides: Mapping[str, Any]) -> None:
        self.settings = params
        self.overrides = overrides
        self.engine: Any = None

    def make_optimizer(self, params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
        if self.settings.offload_optimizer and cfg.optimizer == "adamw":
            from deepspeed.ops.adam import DeepSpeedCPUAdam  # JIT-builds cpu_adam on first use

            return DeepSpeedCPUAdam(params, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                    weight_decay=cfg.weight_decay, adamw_mode=True)
        return make_optimizer(params, cfg)

    def start(self, model: Any, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
              cfg: TrainConfig, run: ObjectiveRun) -> torch.device:
        """Join (or make) the process group and wrap ``model`` with the objective in a ZeRO engine."""
        import torch.distributed as dist

        deepspeed = _deepspeed()
        if not dist.is_initialized():  # a lone actor: a group of one (a group's ranks joined theirs)
            init_distributed()
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.params = params
        model.zero_grad(set_to_none=True)  # DeepSpeed accumulates into whatever a previous fit left
        wrapper = _with_objective_class()(model, run)
        if self.settings.zero_stage == 3:
            for param in params:  # used by the objective outside the modules that own them
                deepspeed.zero.register_external_parameter(wrapper, param)
        config = _merged(ds_config(self.settings, cfg, self.world), self.overrides)
        self.engine, *_ = deepspeed.initialize(model=wrapper, optimizer=optimizer, config=config)
        self.engine.train()
        return self.engine.device

    def my_rows(self, batch: np.ndarray) -> tuple[np.ndarray, bool]:
        """Every rank draws the same batch and trains on its slice. A rank without rows still runs forward
        and backward (weight 0): ZeRO's collectives need every rank."""
        shard = np.array_split(batch, self.world)[self.rank]
        return (shard, True) if len(shard) else (batch[:1], False)

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor], run: ObjectiveRun,
             counts: bool) -> torch.Tensor:
        return self.engine(batch, _loss_scale(batch["labels"], counts, self.world))

    def update(self, model: Any, loss: torch.Tensor, run: ObjectiveRun, cfg: TrainConfig) -> None:
        """The engine's backward and step (it clips, as ``gradient_clipping`` says)."""
        self.engine.backward(loss)
        if self.settings.zero_stage == 0:
            run.after_backward(model)  # reduced, whole gradients: what the step will use
        self.engine.step()

    def batch_losses(self, losses: list[float]) -> list[float]:
        """Each rank's share of each step's loss, summed over ranks: the batch's loss."""
        shares = torch.tensor([loss / self.world for loss in losses], dtype=torch.float64)
        return _sum_over_ranks(shares, self.world).tolist()

    def whole_params(self) -> AbstractContextManager:
        """ZeRO-3: the trainable params whole on every rank for the block; otherwise nothing to do."""
        if self.settings.zero_stage == 3:
            return _deepspeed().zero.GatheredParameters(self.params)
        return nullcontext()

    def finish(self, model: Any) -> None:
        """Drop the engine and, after ZeRO-3, give the model back its whole params."""
        if self.engine is None:
            return
        self.engine.destroy()
        if self.settings.zero_stage == 3:
            _unpartition(_deepspeed(), model)


class DeepSpeedTrainer(Trainer):
    """Trains through ``deepspeed.initialize`` with ZeRO stage ``params.zero_stage``.

    ``overrides`` are merged into the DeepSpeed config (tests use it to force ZeRO-3 to partition even
    small params: ``{"zero_optimization": {"stage3_param_persistence_threshold": 0}}``).
    """

    def __init__(self, params: DeepSpeedParams, overrides: Mapping[str, Any] | None = None) -> None:
        self.params = params
        self.overrides = dict(overrides or {})

    def new_steps(self) -> Steps:
        return ZeroSteps(self.params, self.overrides)

    def fit(self, model: Any, collator: Collator, rows: Sequence[Mapping[str, Any]], cfg: TrainConfig,
            objective: LocalObjective, global_state: AdapterState,
            rng: np.random.Generator) -> tuple[TrainStats, AdapterState]:
        """Refuse an objective this ZeRO stage would defeat, then run the fit."""
        problem = gradient_edit_problem(self.params.zero_stage, objective)
        if problem:
            raise FedRayError(problem)
        return super().fit(model, collator, rows, cfg, objective, global_state, rng)


def _loss_scale(labels: torch.Tensor, has_rows: bool, world: int) -> float:
    """N·t_r/t: this rank's share of the batch's answer tokens (1.0 for a group of one)."""
    from fedray.models.collate import IGNORE_INDEX

    if world == 1:
        return 1.0
    # Causal-LM losses predict token t+1 from t: the first label never counts.
    tokens = float((labels[:, 1:] != IGNORE_INDEX).sum()) if has_rows else 0.0
    total = float(_sum_over_ranks(torch.tensor([tokens], dtype=torch.float64), world)[0])
    return world * tokens / total if total else 0.0


def _sum_over_ranks(values: torch.Tensor, world: int) -> torch.Tensor:
    if world == 1:
        return values
    import torch.distributed as dist

    values = values.to("cuda") if dist.get_backend() == "nccl" else values
    dist.all_reduce(values)
    return values.cpu()


def _unpartition(deepspeed: Any, model: Any) -> None:
    """Give a ZeRO-3-partitioned model back its whole params as plain ``nn.Parameter`` objects.

    ``engine.destroy()`` removes DeepSpeed's hooks but leaves each param partitioned (its data empty)
    and each module's parameter dict replaced by ZeRO's; the actor needs a plain module to evaluate and
    to load the next adapter into. Shared params stay shared.
    """
    params = list(model.parameters())
    with deepspeed.zero.GatheredParameters(params):
        whole = {id(p): p.data.detach().clone() for p in params}
    fresh: dict[int, torch.nn.Parameter] = {}
    for module in model.modules():
        replaced = {}
        for name, param in dict.items(module._parameters):  # no ZeRO gathering on access
            if param is not None and id(param) not in fresh:
                fresh[id(param)] = torch.nn.Parameter(whole[id(param)], requires_grad=param.requires_grad)
            replaced[name] = None if param is None else fresh[id(param)]
        module._parameters = replaced


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) \
            else value
    return out
