"""LoRA target presets per model family."""

from __future__ import annotations

import re

import pytest

from fedray.config.schema import LoraConfig
from fedray.errors import FedRayError
from fedray.models.families import lora_targets, modules_to_save

LM_Q = "model.language_model.layers.0.self_attn.q_proj"
LM_UP = "model.language_model.layers.0.mlp.up_proj"
VISION_Q = "model.vision_tower.encoder.layers.0.self_attn.q_proj"


def _hits(cfg: LoraConfig, paths=(LM_Q, LM_UP, VISION_Q)) -> set[str]:
    pattern = lora_targets(cfg, "llava")
    return {p for p in paths if re.fullmatch(pattern, p)}


def test_default_preset_is_language_model_attention_only():
    assert _hits(LoraConfig()) == {LM_Q}


def test_mlp_preset_and_vision_flag_widen_the_targets():
    assert _hits(LoraConfig(preset="attention_mlp")) == {LM_Q, LM_UP}
    assert _hits(LoraConfig(vision=True)) == {LM_Q, VISION_Q}


def test_explicit_regex_wins_over_the_preset():
    assert _hits(LoraConfig(target_modules=r".*up_proj", vision=True)) == {LM_UP}


def test_train_projector_adds_the_family_projector_once():
    assert modules_to_save(LoraConfig(train_projector=True), "llava") == ["multi_modal_projector"]
    cfg = LoraConfig(train_projector=True, modules_to_save=("multi_modal_projector",))
    assert modules_to_save(cfg, "llava") == ["multi_modal_projector"]
    assert modules_to_save(LoraConfig(), "llava") == []


def test_unknown_family_is_a_clear_error():
    with pytest.raises(FedRayError, match="model family"):
        lora_targets(LoraConfig(), "no-such-family")
