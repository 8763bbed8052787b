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


# Real module paths per family (read off tiny models built from config with transformers 5.24), as
# (language attention, language MLP, vision attention, vision non-attention that no preset may touch).
PATHS = {
    "qwen2_vl": (
        "model.language_model.layers.1.self_attn.k_proj", "model.language_model.layers.1.mlp.down_proj",
        "model.visual.blocks.0.attn.qkv",
        ("model.visual.patch_embed.proj", "model.visual.blocks.0.mlp.fc1", "model.visual.merger.mlp.0")),
    "qwen2_5_vl": (
        "model.language_model.layers.0.self_attn.o_proj", "model.language_model.layers.0.mlp.gate_proj",
        "model.visual.blocks.1.attn.proj",
        ("model.visual.patch_embed.proj", "model.visual.blocks.0.mlp.gate_proj",
         "model.visual.merger.mlp.2")),
    "idefics3": (
        "model.text_model.layers.0.self_attn.q_proj", "model.text_model.layers.0.mlp.up_proj",
        "model.vision_model.encoder.layers.0.self_attn.out_proj",
        ("model.vision_model.encoder.layers.0.mlp.fc1", "model.connector.modality_projection.proj")),
    "smolvlm": (
        "model.text_model.layers.0.self_attn.v_proj", "model.text_model.layers.0.mlp.gate_proj",
        "model.vision_model.encoder.layers.0.self_attn.k_proj",
        ("model.vision_model.encoder.layers.0.mlp.fc2", "model.connector.modality_projection.proj")),
    "minicpmv": (
        "llm.model.layers.0.self_attn.q_proj", "llm.model.layers.0.mlp.down_proj",
        "vpm.encoder.layers.0.self_attn.v_proj", ("vpm.encoder.layers.0.mlp.fc1", "resampler.kv_proj")),
}
PROJECTORS = {"qwen2_vl": "visual.merger", "qwen2_5_vl": "visual.merger", "idefics3": "connector",
              "smolvlm": "connector", "minicpmv": "resampler"}


@pytest.mark.parametrize("family", sorted(PATHS))
def test_each_family_preset_selects_its_own_towers(family):
    attention, mlp, vision, never = PATHS[family]
    paths = (attention, mlp, vision, *never)

    def hits(cfg):
        return {p for p in paths if re.fullmatch(lora_targets(cfg, family), p)}

    assert hits(LoraConfig()) == {attention}
    assert hits(LoraConfig(preset="attention_mlp")) == {attention, mlp}
    assert hits(LoraConfig(preset="attention_mlp", vision=True)) == {attention, mlp, vision}
    assert modules_to_save(LoraConfig(train_projector=True), family) == [PROJECTORS[family]]
