"""The model-builder contract: a registered name builds a model, its processor and a collate function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from fedray.config.schema import ModelConfig
from fedray.registry import Registry


@dataclass
class BuiltModel:
    """What a builder returns; the model is a plain (not yet LoRA-wrapped) image-text-to-text model."""

    model: Any
    processor: Any
    family: str  # e.g. "llava"; selects chat-template quirks in collate


class ModelBuilder(Protocol):
    def __call__(self, cfg: ModelConfig) -> BuiltModel: ...


MODEL_BUILDERS: Registry[Callable[[ModelConfig], BuiltModel]] = Registry("model builder")


def build_model(cfg: ModelConfig) -> BuiltModel:
    """Build the base model named by ``cfg.name`` (e.g. ``tiny-vlm``, ``hf``)."""
    return MODEL_BUILDERS.get(cfg.name)(cfg)


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
