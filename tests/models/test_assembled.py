"""The ``assembled`` builder: fast tests on a tiny random Llama + random EfficientNet-Lite0 written to disk,
slow tests on the real SmolLM2-135M-Instruct and EfficientNet-Lite0 (``make assets-real``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fedray.config.schema import AssembledConfig, LoraConfig, ModelConfig
from fedray.data.schema import encode_png
from fedray.errors import ModelError
from fedray.models import build_model
from fedray.models.assembled_processor import IMAGE_PLACEHOLDER, AssembledProcessor
from fedray.models.assets import GGUF_FILE, LM_DIR, VISION_FILE, language_model_path, vision_weights_path
from fedray.models.collate import IGNORE_INDEX, Collator
from fedray.models.efficientnet_lite import EfficientNetLite0, load_efficientnet_lite0, lukemelas_key
from fedray.models.lora import apply_lora, get_adapter_state
from fedray.seeding import torch_seeded

GRID, SIZE = 2, 64  # a 64 px image gives EfficientNet a 2x2 map; pooled to 2x2 = 4 image tokens
TINY_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>\n{% endfor %}"
                 "{% if add_generation_prompt %}<s>assistant: {% endif %}")


@pytest.fixture(scope="module")
def tiny_assets(tmp_path_factory) -> tuple[Path, Path]:
    """(tiny Llama directory with a tokenizer that has the placeholder token, random lukemelas .pth)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from fedray.models.tokenizer import build_tiny_tokenizer

    root = tmp_path_factory.mktemp("assembled")
    tokenizer = build_tiny_tokenizer()
    tokenizer.add_tokens([IMAGE_PLACEHOLDER], special_tokens=True)
    tokenizer.chat_template = TINY_TEMPLATE
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    with torch_seeded(0):
        LlamaForCausalLM(config).save_pretrained(root / "lm")
        vision = EfficientNetLite0()
    tokenizer.save_pretrained(root / "lm")
    torch.save({lukemelas_key(k): v for k, v in vision.state_dict().items()}, root / VISION_FILE)
    return root / "lm", root / VISION_FILE


def _cfg(assets: tuple[Path, Path], **overrides) -> ModelConfig:
    settings = dict(language_model=str(assets[0]), vision_weights=str(assets[1]), image_size=SIZE,
                    image_grid=GRID, projector_hidden=16)
    settings.update(overrides)
    return ModelConfig(name="assembled", max_length=96, assembled=AssembledConfig(**settings))


def _row(answer="seven", image=True, text=None):
    from PIL import Image

    png = encode_png(Image.new("RGB", (24, 24), (200, 10, 10))) if image else None
    return {"id": "x", "image": png, "text": text, "question": "Which digit is shown?", "choices": None,
            "answer": answer}


ROWS = [_row("seven"), _row("two", image=False, text="a caption"), _row("nine", text="both")]


# -- vision tower ----------------------------------------------------------------------------------
def test_efficientnet_loads_lukemelas_names_and_reports_mismatches(tiny_assets, tmp_path):
    model = load_efficientnet_lite0(tiny_assets[1])
    state = torch.load(tiny_assets[1], weights_only=True)
    assert len(state) == 296  # as in the real file: 16 MBConv blocks, stem, head, classifier
    assert torch.equal(model.blocks[3].expand_conv.weight, state["_blocks.3._expand_conv.weight"])
    broken = dict(state, **{"_blocks.3._expand_conv.weight": torch.zeros(1, 1, 1, 1)})
    broken.pop("_conv_head.weight")
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ModelError, match=r"_conv_head.weight.*_blocks.3._expand_conv.weight: file \(1, 1"):
        load_efficientnet_lite0(tmp_path / "broken.pth")


def test_batchnorm_stays_in_eval_mode_and_features_are_deterministic(tiny_assets):
    model = load_efficientnet_lite0(tiny_assets[1], num_classes=0)
    pixels = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    before = model.features(pixels)
    model.train()
    assert model.training and not any(m.training for m in model.modules()
                                      if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.equal(model.features(pixels), before)
    assert before.shape == (2, 1280, SIZE // 32, SIZE // 32)


# -- assets ----------------------------------------------------------------------------------------
def test_missing_assets_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDRAY_ASSETS", str(tmp_path))
    with pytest.raises(ModelError, match=f"{LM_DIR}/config.json.*make assets-real"):
        language_model_path(None)
    with pytest.raises(ModelError, match=f"{VISION_FILE}.*make assets-real"):
        vision_weights_path(None)
    with pytest.raises(ModelError, match="language_model='/nope'.*make assets-real"):
        language_model_path("/nope")
    monkeypatch.delenv("FEDRAY_ASSETS")
    with pytest.raises(ModelError, match="FEDRAY_ASSETS"):
        build_model(ModelConfig(name="assembled"))


def test_assets_are_found_under_fedray_assets(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDRAY_ASSETS", str(tmp_path))
    (tmp_path / GGUF_FILE).write_bytes(b"")
    (tmp_path / VISION_FILE).write_bytes(b"")
    assert language_model_path(None) == tmp_path / GGUF_FILE  # the .gguf when not converted yet
    (tmp_path / LM_DIR).mkdir()
    (tmp_path / LM_DIR / "config.json").write_text("{}")
    assert language_model_path(None) == tmp_path / LM_DIR
    assert vision_weights_path(None) == tmp_path / VISION_FILE


# -- processor and collation -----------------------------------------------------------------------
def test_placeholder_expands_to_grid_squared_tokens(tiny_assets):
    processor = build_model(_cfg(tiny_assets)).processor
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.count(IMAGE_PLACEHOLDER) == 1 and text.endswith("assistant: ")
    from PIL import Image

    encoded = processor(text=[text], images=[Image.new("RGB", (10, 20))], return_tensors="pt")
    assert int((encoded["input_ids"] == processor.image_token_id).sum()) == GRID ** 2
    assert encoded["pixel_values"].shape == (1, 3, SIZE, SIZE)
    with pytest.raises(ModelError, match="1 image placeholder.*0 image"):
        processor(text=[text], images=None, return_tensors="pt")


def test_processor_rejects_a_tokenizer_without_the_placeholder():
    from fedray.models.tokenizer import build_tiny_tokenizer

    with pytest.raises(ModelError, match="<empty_output>"):
        AssembledProcessor(build_tiny_tokenizer(), SIZE, GRID)


def test_collator_batches_for_image_text_and_text_only_rows(tiny_assets):
    built = build_model(_cfg(tiny_assets))
    collator = Collator(built.processor, max_length=96)
    image_id = built.processor.image_token_id
    train = collator.train_batch(ROWS)
    assert train["pixel_values"].shape == (2, 3, SIZE, SIZE)  # rows 0 and 2 have images
    assert (train["input_ids"] == image_id).sum(1).tolist() == [GRID ** 2, 0, GRID ** 2]
    answer = train["labels"][0][train["labels"][0] != IGNORE_INDEX].tolist()
    assert built.processor.tokenizer.decode(answer).strip() == "seven</s>"
    generation = collator.generation_batch(ROWS)
    assert (generation["attention_mask"][:, -1] == 1).all()  # left-padded
    assert (generation["input_ids"] == image_id).sum(1).tolist() == [GRID ** 2, 0, GRID ** 2]
    text_only = collator.generation_batch([ROWS[1]])
    assert "pixel_values" not in text_only


# -- model -----------------------------------------------------------------------------------------
def test_forward_backward_trains_only_lora_and_projector(tiny_assets):
    built = build_model(_cfg(tiny_assets))
    model = apply_lora(built.model, LoraConfig(train_projector=True), built.family)
    batch = Collator(built.processor, max_length=96).train_batch(ROWS)
    model.train()
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "multi_modal_projector" in n for n in trainable)
    assert any("self_attn.q_proj.lora_A" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable
    assert all(torch.isfinite(p.grad).all() for n, p in model.named_parameters() if n in with_grad)
    state = get_adapter_state(model)
    assert any("multi_modal_projector" in k for k in state)
    assert all("language_model" in k or "multi_modal_projector" in k for k in state)


def test_projector_is_the_same_for_the_same_seed(tiny_assets):
    first = build_model(_cfg(tiny_assets)).model.multi_modal_projector.state_dict()
    second = build_model(_cfg(tiny_assets)).model.multi_modal_projector.state_dict()
    other = build_model(_cfg(tiny_assets, init_seed=1)).model.multi_modal_projector.state_dict()
    linear = build_model(_cfg(tiny_assets, projector_hidden=0)).model.multi_modal_projector
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    assert set(linear.state_dict()) == {"linear.weight", "linear.bias"}


def test_batched_generation_returns_prompt_then_tokens_and_matches_single_rows(tiny_assets):
    from fedray.client.evaluate import generate_answers

    built = build_model(_cfg(tiny_assets))
    model = apply_lora(built.model, LoraConfig(train_projector=True), built.family)
    collator = Collator(built.processor, max_length=96)
    batch = collator.generation_batch(ROWS)
    out = model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=collator.pad_id)
    assert out.shape[0] == 3 and torch.equal(out[:, : batch["input_ids"].shape[1]], batch["input_ids"])
    batched = generate_answers(model, collator, ROWS, batch_size=3, max_new_tokens=3)
    single = [generate_answers(model, collator, [row], batch_size=1, max_new_tokens=3)[0] for row in ROWS]
    assert len(batched) == 3 and all(isinstance(s, str) for s in batched)
    assert batched == single  # left padding does not change a row's greedy answer
    only_images = generate_answers(model, collator, [ROWS[0], ROWS[2]], batch_size=2, max_new_tokens=2)
    assert len(only_images) == 2


# -- real weights (make assets-real) ---------------------------------------------------------------
def _real_or_skip() -> tuple[Path, Path]:
    root = os.environ.get("FEDRAY_ASSETS")
    lm, pth = Path(root or "/nonexistent") / LM_DIR, Path(root or "/nonexistent") / VISION_FILE
    if not ((lm / "config.json").is_file() and pth.is_file()):
        pytest.skip(f"real weights absent ({lm}, {pth}): run `make assets-real` and set FEDRAY_ASSETS")
    return lm, pth


@pytest.mark.slow
def test_real_efficientnet_recognises_a_building_in_china_jpg():
    from PIL import Image
    from sklearn.datasets import load_sample_images

    _, pth = _real_or_skip()
    model = load_efficientnet_lite0(pth)
    processor = AssembledProcessor.__new__(AssembledProcessor)  # pixel preprocessing only
    processor.image_size = 224
    photo = Image.fromarray(load_sample_images().images[0])  # a Chinese temple (CC BY 2.0, sklearn)
    with torch.no_grad():
        logits = model(processor.pixel_values([photo]))
        again = model(processor.pixel_values([photo]))
    assert torch.equal(logits, again)
    top5 = logits[0].topk(5).indices.tolist()
    # ImageNet: 442 bell cote, 497 church, 538 dome, 663 monastery, 698 palace, 832 stupa
    assert top5[0] in {442, 497, 538, 663, 698, 832}


@pytest.mark.slow
def test_real_assembled_model_answers_a_text_question():
    from fedray.client.evaluate import generate_answers

    lm, pth = _real_or_skip()
    built = build_model(ModelConfig(name="assembled", max_length=128, assembled=AssembledConfig(
        language_model=str(lm), vision_weights=str(pth))))
    collator = Collator(built.processor, max_length=128)
    row = {"id": "q", "image": None, "text": None, "question": "What is the capital of France?",
           "choices": None, "answer": "Paris"}
    picture = dict(_row(), question="What color is this picture?")
    answers = generate_answers(built.model, collator, [row, picture], batch_size=2, max_new_tokens=12)
    assert "Paris" in answers[0]
    assert len(answers) == 2
