"""The ``hf`` builder on each model family: tiny random models saved to disk and loaded back by path.

Each family's model is built from config (2 layers, hidden size 64, a 2-layer vision tower), its processor
wraps the offline byte-level BPE tokenizer with that family's special tokens and chat template, and both are
written with ``save_pretrained`` so that loading goes through the real ``from_pretrained`` code.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from PIL import Image

from fedray.client.evaluate import generate_answers
from fedray.config.schema import LoraConfig, ModelConfig
from fedray.data.schema import encode_png
from fedray.errors import ModelError
from fedray.models import build_model
from fedray.models.collate import Collator
from fedray.models.hf import has_torchvision, without_video
from fedray.models.lora import adapter_bytes_breakdown, apply_lora, get_adapter_state
from fedray.models.tiny_vlm import save_tiny_vlm
from fedray.models.tokenizer import build_tiny_tokenizer
from fedray.seeding import torch_seeded

TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)


def _save_llava(directory):
    save_tiny_vlm(ModelConfig(), directory)


def _save_qwen(directory, version: str):
    import transformers
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    prefix = {"2": "Qwen2VL", "2.5": "Qwen2_5_VL"}[version]
    config_cls, model_cls, processor_cls = (getattr(transformers, prefix + suffix) for suffix in
                                            ("Config", "ForConditionalGeneration", "Processor"))
    tok = build_tiny_tokenizer(family="qwen2_vl")
    # 4-pixel patches merged 2x2: a 32x32 image is 64 patches and 16 <|image_pad|> tokens.
    images = Qwen2VLImageProcessorPil(patch_size=4, merge_size=2, temporal_patch_size=2,
                                      min_pixels=16 * 16, max_pixels=32 * 32)
    if has_torchvision():
        from transformers import Qwen2VLVideoProcessor

        processor = processor_cls(image_processor=images, tokenizer=tok, chat_template=tok.chat_template,
                                  video_processor=Qwen2VLVideoProcessor())
    else:
        processor = without_video(processor_cls)(image_processor=images, tokenizer=tok,
                                                 chat_template=tok.chat_template)
    vision = {  # Qwen2.5-VL's tower has a SwiGLU MLP and windowed attention outside fullatt_block_indexes
        "2": dict(embed_dim=32, hidden_size=64, mlp_ratio=2),
        "2.5": dict(hidden_size=32, out_hidden_size=64, intermediate_size=64, fullatt_block_indexes=[1],
                    window_size=16),
    }[version]
    ids = tok.convert_tokens_to_ids
    config = config_cls(
        text_config=dict(**TEXT, vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=None,
                         eos_token_id=tok.eos_token_id,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 3, 3]}),  # sums to head_dim / 2
        vision_config=dict(depth=2, num_heads=2, patch_size=4, spatial_merge_size=2, temporal_patch_size=2,
                           **vision),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(0)
    model_cls(config).save_pretrained(directory)
    processor.save_pretrained(directory)


def _save_idefics3(directory):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tok = build_tiny_tokenizer(family="idefics3")
    # Images are resized to at most 64 px and split into 32-px crops plus a global view; each crop is
    # (32/8)^2 = 16 patches, pixel-shuffled by scale_factor 2 into 4 <image> tokens.
    images = Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32},
                                       do_image_splitting=True)
    processor = Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=4,
                                  chat_template=tok.chat_template)
    config = Idefics3Config(
        text_config=dict(model_type="llama", **TEXT, vocab_size=len(tok), pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2,
    )
    torch.manual_seed(0)
    Idefics3ForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)


SAVERS = {"llava": _save_llava, "qwen2_vl": lambda d: _save_qwen(d, "2"),
          "qwen2_5_vl": lambda d: _save_qwen(d, "2.5"), "idefics3": _save_idefics3}

# What the presets must hit, spelled out per family from the module paths (not from the preset regexes).
LM_LAYERS = {"llava": "model.language_model.layers.", "qwen2_vl": "model.language_model.layers.",
             "qwen2_5_vl": "model.language_model.layers.", "idefics3": "model.text_model.layers."}
LM_ATTENTION = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
VISION = {
    "llava": ("model.vision_tower.", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                      "self_attn.out_proj")),
    "qwen2_vl": ("model.visual.blocks.", ("attn.qkv", "attn.proj")),
    "qwen2_5_vl": ("model.visual.blocks.", ("attn.qkv", "attn.proj")),
    "idefics3": ("model.vision_model.encoder.", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                 "self_attn.out_proj")),
}
PROJECTOR = {"llava": "model.multi_modal_projector", "qwen2_vl": "model.visual.merger",
             "qwen2_5_vl": "model.visual.merger", "idefics3": "model.connector"}


@pytest.fixture(scope="module", params=sorted(SAVERS))
def saved(request, tmp_path_factory):
    """(family, directory) of a tiny model of each family, saved once per module."""
    directory = tmp_path_factory.mktemp(request.param)
    SAVERS[request.param](directory)
    return request.param, directory


def _load(directory, **model_fields):
    return build_model(ModelConfig(name="hf", path=str(directory), **model_fields))


def _row(i, image=True, text="a caption", size=(32, 32)):
    png = encode_png(Image.new("RGB", size, (40 * i, 90, 200 - 30 * i))) if image else None
    return {"id": f"r{i}", "image": png, "text": text, "question": "Which digit is shown?", "choices": None,
            "answer": "seven", "label": None}


# image+text, text only, image only (non-square: Idefics3 splits it into fewer crops), image+text
ROWS = [_row(0), _row(1, image=False), _row(2, text=None, size=(48, 20)), _row(3, size=(64, 64))]


def _lora_modules(peft_model) -> set[str]:
    prefix = "base_model.model."
    return {name[len(prefix):] for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}


def _expected(model, prefix: str, suffixes: tuple[str, ...]) -> set[str]:
    hits = {n for n, _ in model.named_modules() if n.startswith(prefix) and n.endswith(suffixes)}
    assert hits, f"no module under {prefix} ends with {suffixes}"
    return hits


def test_family_comes_from_the_model_config(saved):
    family, directory = saved
    assert _load(directory).family == family


def test_default_preset_is_language_model_attention_and_vision_flag_adds_the_tower(saved):
    family, directory = saved
    built = _load(directory)
    lm = _expected(built.model, LM_LAYERS[family], LM_ATTENTION)
    vision = _expected(built.model, *VISION[family])
    assert _lora_modules(apply_lora(built.model, LoraConfig(), family)) == lm
    with_vision = _load(directory)
    assert _lora_modules(apply_lora(with_vision.model, LoraConfig(vision=True), family)) == lm | vision


def test_train_projector_trains_and_ships_the_family_projector(saved):
    family, directory = saved
    built = _load(directory)
    projector = dict(built.model.named_parameters())
    projector_bytes = sum(p.numel() * p.element_size() for n, p in projector.items()
                          if n.startswith(PROJECTOR[family] + "."))
    model = apply_lora(built.model, LoraConfig(train_projector=True), family)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    assert trainable and all(PROJECTOR[family] + ".modules_to_save." in n for n in trainable)
    shipped = [k for k in get_adapter_state(model) if "lora_" not in k]
    assert shipped and all(PROJECTOR[family] + "." in k for k in shipped)
    sizes = adapter_bytes_breakdown(model)
    assert sizes["modules_to_save"] == projector_bytes
    assert sizes["lora"] > 0 and sizes["total"] == sizes["lora"] + sizes["modules_to_save"]


def test_a_training_batch_gives_a_finite_loss_and_grads_only_on_trainable_params(saved):
    family, directory = saved
    built = _load(directory)
    model = apply_lora(built.model, LoraConfig(train_projector=True), family)
    model.train()
    batch = Collator(built.processor, max_length=256).train_batch(ROWS)
    loss = model(**batch).loss
    assert math.isfinite(loss.item())
    loss.backward()
    params = dict(model.named_parameters())
    assert {n for n, p in params.items() if p.grad is not None} == {n for n, p in params.items()
                                                                     if p.requires_grad}


def test_generation_returns_one_string_per_row_on_a_mixed_batch(saved):
    family, directory = saved
    built = _load(directory)
    model = apply_lora(built.model, LoraConfig(), family)
    answers = generate_answers(model, Collator(built.processor, max_length=256), ROWS, batch_size=4,
                               max_new_tokens=3)
    assert len(answers) == len(ROWS) and all(isinstance(a, str) for a in answers)


def test_bfloat16_is_honoured(saved):
    family, directory = saved
    model = _load(directory, dtype="bfloat16").model
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_gradient_checkpointing_is_switched_on_by_the_config(saved):
    family, directory = saved
    assert _load(directory, gradient_checkpointing=True).model.is_activation_checkpointing
    assert not _load(directory).model.is_activation_checkpointing


def test_gradient_checkpointing_leaves_the_loss_and_lora_grads_unchanged():
    """Same loss and LoRA grads with and without checkpointing (tiny-vlm builder, LoRA B made non-zero)."""
    results = []
    for checkpointing in (False, True):
        built = build_model(ModelConfig(gradient_checkpointing=checkpointing))
        assert built.model.is_activation_checkpointing == checkpointing
        with torch_seeded(0):
            model = apply_lora(built.model, LoraConfig(), built.family)
            for name, param in model.named_parameters():
                if "lora_B" in name:  # zero at init, which would leave every lora_A grad zero too
                    torch.nn.init.normal_(param, std=0.05)
        model.train()
        loss = model(**Collator(built.processor, max_length=128).train_batch(ROWS)).loss
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        assert grads and all(g is not None for g in grads.values())
        results.append((loss.detach(), grads))
    (loss, grads), (loss_gc, grads_gc) = results
    torch.testing.assert_close(loss_gc, loss)
    assert grads_gc.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(grads_gc[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)


# -- errors -----------------------------------------------------------------------------------------

def test_a_wrong_path_or_an_id_missing_from_the_cache_is_a_clear_error(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError, match="does not exist"):
        _load(tmp_path / "no-such-dir")
    missing = r"nor a model in the local Hugging Face cache \(.*hub\).*Download it beforehand"
    with pytest.raises(ModelError, match=missing):
        _load("some-org/some-vlm")


def test_a_model_id_in_the_local_cache_loads(tmp_path, monkeypatch, tiny_model_dir):
    from huggingface_hub import constants

    # The hub cache layout: models--org--name/refs/main names the snapshot folder holding the files.
    repo = tmp_path / "hub" / "models--some-org--tiny-llava"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert _load("some-org/tiny-llava").family == "llava"


def test_an_unknown_family_is_a_clear_error_listing_the_known_ones(tmp_path, tiny_model_dir):
    with pytest.raises(ModelError, match=r"unknown model family 'nope'.*llava.*qwen2_vl"):
        _load(tiny_model_dir, family="nope")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mystery_vlm"}))
    with pytest.raises(ModelError, match=r"'mystery_vlm'.*model_type.*idefics3.*set model.family"):
        _load(tmp_path)


def test_4bit_without_bitsandbytes_or_cuda_is_a_clear_error(tiny_model_dir):
    with pytest.raises(ModelError, match=r"quantization=4bit needs (the bitsandbytes package|a CUDA GPU)"):
        _load(tiny_model_dir, quantization="4bit")


# -- MiniCPM-V: remote code only ---------------------------------------------------------------------

CONFIG_PY = '''
from transformers import PretrainedConfig


class MiniCPMVConfig(PretrainedConfig):
    model_type = "minicpmv"

    def __init__(self, hidden_size=16, num_layers=2, **kwargs):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        super().__init__(**kwargs)
'''

# The module tree of MiniCPM-V 2.6 (llm / vpm / resampler), at toy size, with no forward.
MODELING_PY = '''
from torch import nn
from transformers import PreTrainedModel

from .configuration_minicpm import MiniCPMVConfig


def _layer(width, attention, mlp):
    layer = nn.Module()
    layer.self_attn = nn.ModuleDict({name: nn.Linear(width, width) for name in attention})
    layer.mlp = nn.ModuleDict({name: nn.Linear(width, width) for name in mlp})
    return layer


class MiniCPMV(PreTrainedModel):
    config_class = MiniCPMVConfig

    def __init__(self, config):
        super().__init__(config)
        width, depth = config.hidden_size, config.num_layers
        self.llm = nn.Module()
        self.llm.model = nn.Module()
        self.llm.model.layers = nn.ModuleList(
            _layer(width, ["q_proj", "k_proj", "v_proj", "o_proj"], ["gate_proj", "up_proj", "down_proj"])
            for _ in range(depth))
        self.vpm = nn.Module()
        self.vpm.encoder = nn.Module()
        self.vpm.encoder.layers = nn.ModuleList(
            _layer(width, ["q_proj", "k_proj", "v_proj", "out_proj"], ["fc1", "fc2"]) for _ in range(depth))
        self.resampler = nn.Linear(width, width)
        self.post_init()
'''


@pytest.fixture(scope="module")
def minicpmv_dir(tmp_path_factory, tiny_model_dir):
    """A MiniCPM-V-shaped checkpoint whose model exists only as code in the directory (auto_map)."""
    from transformers import AutoConfig, AutoModel

    directory = tmp_path_factory.mktemp("minicpmv")
    (directory / "configuration_minicpm.py").write_text(CONFIG_PY)
    (directory / "modeling_minicpmv.py").write_text(MODELING_PY)
    (directory / "config.json").write_text(json.dumps({
        "model_type": "minicpmv", "hidden_size": 16, "num_layers": 2,
        "auto_map": {"AutoConfig": "configuration_minicpm.MiniCPMVConfig",
                     "AutoModel": "modeling_minicpmv.MiniCPMV"},
    }))
    config = AutoConfig.from_pretrained(directory, trust_remote_code=True, local_files_only=True)
    AutoModel.from_config(config, trust_remote_code=True).save_pretrained(directory)
    for processor_file in ("processor_config.json", "tokenizer.json", "tokenizer_config.json",
                           "chat_template.jinja"):
        if (tiny_model_dir / processor_file).is_file():
            shutil.copy(tiny_model_dir / processor_file, directory / processor_file)
    return directory


def test_minicpmv_needs_trust_remote_code(minicpmv_dir):
    with pytest.raises(ModelError, match="model.trust_remote_code=true"):
        _load(minicpmv_dir)


def test_minicpmv_needs_its_code_files(minicpmv_dir, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(minicpmv_dir / name, tmp_path / name)
    with pytest.raises(ModelError, match=r"modeling_minicpmv.py.*not in the model directory"):
        _load(tmp_path, trust_remote_code=True)


def test_minicpmv_loads_through_its_remote_code_and_takes_the_family_preset(minicpmv_dir):
    built = _load(minicpmv_dir, trust_remote_code=True)
    assert built.family == "minicpmv" and type(built.model).__name__ == "MiniCPMV"
    model = apply_lora(built.model, LoraConfig(vision=True, train_projector=True), "minicpmv")
    hit = _lora_modules(model)
    assert {n for n in hit if n.startswith("llm.")} == {
        f"llm.model.layers.{i}.self_attn.{p}" for i in range(2)
        for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
    assert {n for n in hit if not n.startswith("llm.")} == {
        f"vpm.encoder.layers.{i}.self_attn.{p}" for i in range(2)
        for p in ("q_proj", "k_proj", "v_proj", "out_proj")}
    assert any(".resampler.modules_to_save." in n for n, p in model.named_parameters() if p.requires_grad)
