"""The model-builder contract: a registered name builds a model, its processor and a collate function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fedray.config.schema import ModelConfig
from fedray.registry import Registry


@dataclass
class BuiltModel:
    """What a builder returns; the model is a plain (not yet LoRA-wrapped) image-text-to-text model."""

    model: Any
    processor: Any
    family: str  # e.g. "llava"; selects chat-template quirks in collate


#: Builders by ``model.name``; each is registered with its parameter dataclass, a section of ``model``
#: (``tiny-vlm``: ``model.tiny``, ``assembled``: ``model.assembled``; ``hf`` reads ``model.path``,
#: ``model.family`` and ``model.trust_remote_code``, shared fields of the section).
MODEL_BUILDERS: Registry[Callable[[ModelConfig], BuiltModel]] = Registry("model builder")


def build_model(cfg: ModelConfig) -> BuiltModel:
    """Build the base model named by ``cfg.name`` (e.g. ``tiny-vlm``, ``hf``)."""
    return MODEL_BUILDERS.get(cfg.name)(cfg)


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
