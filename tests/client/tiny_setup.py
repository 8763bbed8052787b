"""The tiny LoRA model, collator, digit rows and initial adapter that the client-side tests train."""

from __future__ import annotations

import torch

from fedray.config.schema import LoraConfig, ModelConfig
from fedray.data.sources import read_source
from fedray.models import build_model
from fedray.models.collate import Collator
from fedray.models.lora import apply_lora, get_adapter_state


def tiny_training_setup(model_cfg: ModelConfig, lora: LoraConfig, num_rows: int = 16):
    """(model, collator, rows, initial adapter state), the LoRA init seeded with 0."""
    built = build_model(model_cfg)
    torch.manual_seed(0)
    model = apply_lora(built.model, lora)
    rows = read_source("digits", {"image_size": 32}).splits["train"].slice(0, num_rows).to_pylist()
    return model, Collator(built.processor, model_cfg.max_length), rows, get_adapter_state(model)
