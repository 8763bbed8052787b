"""Train engines: what runs a fit's optimizer steps, chosen by ``train.engine.name``.

An engine takes a model whose global adapter is already loaded, trains it on a client's rows and
returns the statistics and the adapter after training. Between fits the model is always a plain
(unwrapped, unpartitioned) torch module, so the actor can evaluate it and load the next adapter with
:func:`~fedray.models.lora.set_adapter_state` whatever the engine.

- ``torch``: :func:`~fedray.client.train.local_train`, the plain PyTorch loop.
- ``deepspeed``: the same loop through a DeepSpeed ZeRO engine
  (:mod:`fedray.client.deepspeed_engine`; DeepSpeed is imported only when this engine is built).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from fedray.client.objectives import AdapterState, LocalObjective
from fedray.client.train import TrainStats, local_train
from fedray.config.schema import TrainConfig, TrainEngineConfig
from fedray.models.collate import Collator
from fedray.models.lora import get_adapter_state
from fedray.registry import Registry


class TrainEngine:
    """Runs one fit. Subclasses override :meth:`fit`; :meth:`close` releases what they hold."""

    #: Ranks that train one client together (1 except in a DeepSpeed group client).
    world_size: int = 1

    def fit(self, model: Any, collator: Collator, rows: Sequence[Mapping[str, Any]], cfg: TrainConfig,
            objective: LocalObjective, global_state: AdapterState,
            rng: np.random.Generator) -> tuple[TrainStats, AdapterState]:
        """Train ``model`` (its global adapter already loaded); return stats and the new adapter."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine holds between fits (nothing for the torch engine)."""


TRAIN_ENGINES: Registry[Any] = Registry("train engine")


@TRAIN_ENGINES.register("torch")
class TorchEngine(TrainEngine):
    """The plain PyTorch loop of :func:`~fedray.client.train.local_train`."""

    def __init__(self, cfg: TrainEngineConfig) -> None:
        self.cfg = cfg

    def fit(self, model: Any, collator: Collator, rows: Sequence[Mapping[str, Any]], cfg: TrainConfig,
            objective: LocalObjective, global_state: AdapterState,
            rng: np.random.Generator) -> tuple[TrainStats, AdapterState]:
        stats = local_train(model, collator, rows, cfg, objective, global_state, rng)
        return stats, get_adapter_state(model)


@TRAIN_ENGINES.register("deepspeed")
def _deepspeed_engine(cfg: TrainEngineConfig) -> TrainEngine:
    # Imported here: importing deepspeed takes seconds and logs its accelerator choice.
    from fedray.client.deepspeed_engine import DeepSpeedEngine

    return DeepSpeedEngine(cfg)


def build_train_engine(cfg: TrainEngineConfig) -> TrainEngine:
    """The engine registered as ``cfg.name`` (an unknown name lists the known ones)."""
    return TRAIN_ENGINES.get(cfg.name)(cfg)


def adjusts_gradients(objective: LocalObjective) -> bool:
    """Whether ``objective`` edits gradients after backward (SCAFFOLD's client half does).

    ZeRO stages ≥ 1 reduce and partition gradients inside backward, so such an edit would be lost; the
    config check and the DeepSpeed engine refuse that pairing.
    """
    return objective.adjusts_gradients
