"""The ``fedmllm`` LoRA preset and ``lora.trainable``: what is trained in full, on a faked MiniCPM-V tree.

The fake has MiniCPM-V 2.6's module layout: ``llm`` (a transformers Qwen2 causal LM), ``vpm`` (a NaViT
SigLIP vision tower, here transformers' Idefics2 one, which has the same parameters) and ``resampler`` with
the parameters of openbmb's ``resampler.py`` (learned ``query``, ``kv_proj`` without bias, one
``nn.MultiheadAttention``, ``ln_q``/``ln_kv``/``ln_post``, a ``proj`` matrix; ``pos_embed`` is a buffer).
Built on the meta device at MiniCPM-V 2.6's sizes (Qwen2-7B: 28 layers, width 3584, 4 KV heads, vocabulary
151,666, untied head; SigLIP-400M: 27 layers, width 1152, 4,900 positions; 64 queries) it must count what the
reference printed: 617,236,480 trainable of 8,716,411,632 parameters.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from fedray.config.schema import LoraConfig
from fedray.errors import ModelError
from fedray.models.families import FAMILIES, fedmllm_targets, lora_targets, modules_to_save, trainable_modules
from fedray.models.lora import adapter_bytes_breakdown, apply_lora, get_adapter_state

#: The regex the reference's finetune_lora.sh passes as --lora_target_modules.
REFERENCE_TARGETS = r"llm\..*layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"
#: print_trainable_parameters() of the reference on MiniCPM-V 2.6 (trainable, all).
REFERENCE_COUNTS = (617_236_480, 8_716_411_632)

FULL = {"hidden": 3584, "layers": 28, "heads": 28, "kv_heads": 4, "intermediate": 18944, "vocab": 151_666,
        "vision_hidden": 1152, "vision_layers": 27, "vision_heads": 16, "vision_intermediate": 4304,
        "image_size": 980, "patch": 14, "queries": 64}
TINY = {"hidden": 32, "layers": 3, "heads": 4, "kv_heads": 2, "intermediate": 48, "vocab": 97,
        "vision_hidden": 16, "vision_layers": 2, "vision_heads": 2, "vision_intermediate": 24,
        "image_size": 28, "patch": 14, "queries": 4}


class Resampler(nn.Module):
    """MiniCPM-V 2.6's resampler parameters (forward left out: only the module tree matters here)."""

    def __init__(self, queries: int, embed_dim: int, kv_dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(queries, embed_dim))
        self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False)
        self.attn = nn.MultiheadAttention(embed_dim, embed_dim // 128 or 1)
        self.ln_q, self.ln_kv, self.ln_post = (nn.LayerNorm(embed_dim) for _ in range(3))
        self.proj = nn.Parameter(torch.zeros(embed_dim, embed_dim))
        self.register_buffer("pos_embed", torch.zeros(70, 70, embed_dim), persistent=False)


class FakeMiniCPMV(nn.Module):
    """``llm`` + ``vpm`` + ``resampler`` at the sizes of ``dims``."""

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        from transformers import Qwen2Config, Qwen2ForCausalLM
        from transformers.models.idefics2.modeling_idefics2 import (
            Idefics2VisionConfig,
            Idefics2VisionTransformer,
        )

        self.llm = Qwen2ForCausalLM(Qwen2Config(
            hidden_size=dims["hidden"], num_hidden_layers=dims["layers"], num_attention_heads=dims["heads"],
            num_key_value_heads=dims["kv_heads"], intermediate_size=dims["intermediate"],
            vocab_size=dims["vocab"], tie_word_embeddings=False))
        self.vpm = Idefics2VisionTransformer(Idefics2VisionConfig(
            hidden_size=dims["vision_hidden"], num_hidden_layers=dims["vision_layers"],
            num_attention_heads=dims["vision_heads"], intermediate_size=dims["vision_intermediate"],
            image_size=dims["image_size"], patch_size=dims["patch"]))
        self.resampler = Resampler(dims["queries"], dims["hidden"], dims["vision_hidden"])


def _lora_count(dims: dict[str, int], rank: int = 8) -> int:
    """Rank-r LoRA on q, k, v, o of every layer: r·(d_in + d_out) each; k and v are d → kv_heads·head_dim."""
    d = dims["hidden"]
    kv = dims["kv_heads"] * d // dims["heads"]
    return dims["layers"] * rank * ((d + d) * 2 + (d + kv) * 2)


def _resampler_count(dims: dict[str, int]) -> int:
    d, q, kv = dims["hidden"], dims["queries"], dims["vision_hidden"]
    attention = 3 * d * d + 3 * d + d * d + d  # in_proj weight and bias, out_proj weight and bias
    return q * d + kv * d + attention + 3 * 2 * d + d * d


def test_reference_figures_decompose_into_lora_resampler_and_embeddings():
    lora, resampler, embeddings = _lora_count(FULL), _resampler_count(FULL), FULL["vocab"] * FULL["hidden"]
    assert (lora, resampler, embeddings) == (5_046_272, 68_619_264, 543_570_944)
    assert lora + resampler + embeddings == REFERENCE_COUNTS[0]


def test_full_size_fake_counts_what_the_reference_printed():
    with torch.device("meta"):
        model = apply_lora(FakeMiniCPMV(FULL), LoraConfig(rank=8, alpha=8, dropout=0.05, preset="fedmllm"),
                           "minicpmv")
    params = list(model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    assert (trainable, sum(p.numel() for p in params)) == REFERENCE_COUNTS


@pytest.fixture(scope="module")
def tiny_paths() -> list[str]:
    torch.manual_seed(0)
    return [name for name, _ in FakeMiniCPMV(TINY).named_modules() if name]


def test_fedmllm_targets_select_what_the_reference_regex_selects(tiny_paths):
    ours = {p for p in tiny_paths if re.fullmatch(lora_targets(LoraConfig(preset="fedmllm"), "minicpmv"), p)}
    reference = {p for p in tiny_paths if re.fullmatch(REFERENCE_TARGETS, p)}
    expected = {f"llm.model.layers.{i}.self_attn.{m}_proj" for i in range(TINY["layers"]) for m in "qkvo"}
    assert ours == reference == expected


def test_fedmllm_preset_saves_the_reference_modules_on_minicpmv():
    assert modules_to_save(LoraConfig(preset="fedmllm"), "minicpmv") == ["embed_tokens", "resampler"]
    # An explicit regex replaces the preset, its saved modules included (the preset applies "unset" only).
    assert modules_to_save(LoraConfig(preset="fedmllm", target_modules=r".*q_proj"), "minicpmv") == []
    cfg = LoraConfig(preset="fedmllm", modules_to_save=("resampler", "lm_head"), train_projector=True)
    assert modules_to_save(cfg, "minicpmv") == ["embed_tokens", "resampler", "lm_head"]


# One decoder attention projection, one MLP projection and one vision attention projection per family.
FAMILY_PATHS = {
    "llava": ("model.language_model.layers.3.self_attn.o_proj", "model.language_model.layers.3.mlp.up_proj",
              "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"),
    "qwen2_vl": ("model.language_model.layers.1.self_attn.k_proj",
                 "model.language_model.layers.1.mlp.down_proj", "model.visual.blocks.0.attn.qkv"),
    "idefics3": ("model.text_model.layers.0.self_attn.q_proj", "model.text_model.layers.0.mlp.up_proj",
                 "model.vision_model.encoder.layers.0.self_attn.q_proj"),
    "minicpmv": ("llm.model.layers.27.self_attn.v_proj", "llm.model.layers.0.mlp.gate_proj",
                 "vpm.encoder.layers.0.self_attn.k_proj"),
    "assembled": ("language_model.model.layers.0.self_attn.q_proj",
                  "language_model.model.layers.0.mlp.up_proj", "vision_tower.blocks.0.expand_conv"),
}


@pytest.mark.parametrize("family", sorted(FAMILY_PATHS))
def test_fedmllm_preset_per_family(family):
    attention, mlp, vision = FAMILY_PATHS[family]
    pattern = lora_targets(LoraConfig(preset="fedmllm"), family)
    assert pattern == fedmllm_targets(FAMILIES.get(family))
    assert {p for p in (attention, mlp, vision) if re.fullmatch(pattern, p)} == {attention}
    assert modules_to_save(LoraConfig(preset="fedmllm"), family) == ["embed_tokens",
                                                                      FAMILIES.get(family).projector]


def test_tiny_fake_trains_exactly_the_preset_and_bytes_add_up():
    torch.manual_seed(0)
    model = apply_lora(FakeMiniCPMV(TINY), LoraConfig(rank=8, alpha=8, preset="fedmllm"), "minicpmv")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lora = {n for n in trainable if ".lora_" in n}
    saved = trainable - lora
    lora_modules = {re.sub(r"\.lora_[AB]\.default\.weight$", "", n.removeprefix("base_model.model."))
                    for n in lora}
    assert lora_modules == {f"llm.model.layers.{i}.self_attn.{m}_proj" for i in range(TINY["layers"])
                            for m in "qkvo"}
    assert {n.split(".modules_to_save.")[0].removeprefix("base_model.model.") for n in saved} == \
        {"llm.model.embed_tokens", "resampler"}
    assert not any(".vpm." in n or ".mlp." in n or "lm_head" in n for n in trainable)

    counts = {"lora": _lora_count(TINY),
              "modules_to_save": _resampler_count(TINY) + TINY["vocab"] * TINY["hidden"]}
    params = dict(model.named_parameters())
    assert sum(params[n].numel() for n in lora) == counts["lora"]
    assert sum(params[n].numel() for n in saved) == counts["modules_to_save"]
    sizes = adapter_bytes_breakdown(model)  # float32 here: 4 bytes a parameter
    assert sizes == {"lora": 4 * counts["lora"], "modules_to_save": 4 * counts["modules_to_save"],
                     "total": 4 * (counts["lora"] + counts["modules_to_save"])}
    state = get_adapter_state(model)
    assert sum(t.numel() for t in state.values()) == counts["lora"] + counts["modules_to_save"]


def test_trainable_patterns_take_the_outermost_matching_modules():
    torch.manual_seed(0)
    model = FakeMiniCPMV(TINY)
    patterns = [r"llm\.model\.norm", r"resampler(\..*)?", r"llm\.model\.layers\.\d+\.mlp"]
    found = trainable_modules(model, patterns)
    assert found == ["llm.model.layers.0.mlp", "llm.model.layers.1.mlp", "llm.model.layers.2.mlp",
                     "llm.model.norm", "resampler"]
    cfg = LoraConfig(trainable=(r"llm\.model\.norm",), modules_to_save=("resampler",))
    assert modules_to_save(cfg, "minicpmv", model) == ["resampler", "llm.model.norm"]


def test_trainable_pattern_that_matches_nothing_names_the_paths():
    with pytest.raises(ModelError, match=r"match no module path.*llm\.model"):
        trainable_modules(FakeMiniCPMV(TINY), [r"llm\.model\.no_such_norm"])
    with pytest.raises(ModelError, match="no model was given"):
        modules_to_save(LoraConfig(trainable=(r"resampler",)), "minicpmv")


def _minicpmv_tests() -> ModuleType:
    """tests/models/test_minicpmv.py, whose runnable fake MiniCPM-V (remote code in a directory) this file
    reuses rather than copies (test files are not importable packages under --import-mode=importlib)."""
    path = Path(__file__).with_name("test_minicpmv.py")
    spec = importlib.util.spec_from_file_location("fedray_tests_minicpmv", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_minicpmv_training_step_reaches_every_part_of_the_preset(tmp_path_factory):
    """On the runnable fake: the loss's gradients reach the LoRA matrices and the trained copies of
    ``embed_tokens`` and the resampler, and nothing else."""
    from fedray.models.collate import Collator

    fake = _minicpmv_tests()
    built = fake._load(fake.minicpmv_dir.__wrapped__(tmp_path_factory))
    model = apply_lora(built.model, LoraConfig(rank=8, alpha=8, preset="fedmllm"), "minicpmv")
    model.train()
    batch = Collator(built.processor, max_length=256).train_batch(fake.ROWS)
    model(**batch).loss.backward()
    params = dict(model.named_parameters())
    with_grad = {n for n, p in params.items() if p.grad is not None}
    assert with_grad == {n for n, p in params.items() if p.requires_grad}
    nonzero = {n for n in with_grad if params[n].grad.abs().sum() > 0}  # lora_A waits for lora_B ≠ 0
    for part in (".embed_tokens.modules_to_save.", ".resampler.modules_to_save.", ".lora_B."):
        assert any(part in n for n in nonzero), part


def test_trainable_patterns_reach_a_real_model_through_apply_lora():
    from fedray.config.schema import ModelConfig, TinyVlmConfig
    from fedray.models import build_model
    from fedray.models.lora import apply_lora, get_adapter_state

    built = build_model(ModelConfig(max_length=48, tiny=TinyVlmConfig(text_layers=2, vision_layers=1)))
    model = apply_lora(built.model, LoraConfig(trainable=(r"model\.language_model\.norm",)), built.family)
    trained = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    assert trained and all("language_model.norm" in n for n in trained)
    assert any("language_model.norm" in key for key in get_adapter_state(model))  # aggregated too
