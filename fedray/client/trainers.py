"""Trainers: what runs a client's fits, chosen by ``train.engine.name`` (torch or deepspeed).

Every trainer runs the one loop of :func:`fedray.client.train.local_train`; they differ only in how its
steps run (:class:`fedray.client.train.Steps`). Each is registered with its parameter dataclass, fed from
``train.engine``'s inline keys (``train.engine: {name: deepspeed, zero_stage: 3}``). Importing this module
does not import DeepSpeed: the ``deepspeed`` trainer imports it when it first trains.
"""

from __future__ import annotations

from typing import Any, Callable

from fedray.client.deepspeed import DeepSpeedParams, DeepSpeedTrainer
from fedray.client.train import Trainer
from fedray.config.params import NoParams, params_or_raise
from fedray.config.schema import TrainEngineConfig
from fedray.registry import Registry

#: Trainer factories by name: ``(params) -> Trainer``.
TRAINERS: Registry[Callable[[Any], Trainer]] = Registry("train engine")


@TRAINERS.register("torch")
class TorchTrainer(Trainer):
    """The plain PyTorch loop of :func:`~fedray.client.train.local_train`."""

    def __init__(self, params: NoParams | None = None) -> None:
        self.params = params or NoParams()


TRAINERS.register("deepspeed", params=DeepSpeedParams)(DeepSpeedTrainer)


def build_trainer(cfg: TrainEngineConfig) -> Trainer:
    """The trainer registered as ``cfg.name`` with its parameters built from ``cfg.options``."""
    factory = TRAINERS.get(cfg.name)
    return factory(params_or_raise(TRAINERS.params_class(cfg.name), cfg.options, "train.engine"))
