import torch

from fedray.config.schema import LoraConfig, ModelConfig, TinyVlmConfig
from fedray.data.schema import encode_png
from fedray.models import build_model
from fedray.models.collate import IGNORE_INDEX, Collator
from fedray.models.lora import apply_lora, get_adapter_state, set_adapter_state, state_nbytes
from fedray.models.tokenizer import build_tiny_tokenizer


def _row(answer="seven", with_image=True):
    from PIL import Image

    image = encode_png(Image.new("RGB", (32, 32), (200, 10, 10))) if with_image else None
    return {"id": "x", "image": image, "text": None, "question": "Which digit is shown?",
            "choices": None, "answer": answer}


def test_tokenizer_is_deterministic_and_keeps_answer_words_whole():
    a, b = build_tiny_tokenizer(), build_tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    for word in ("zero", "seven", "nine"):
        assert len(a.tokenize(" " + word)) == 1


def test_same_config_builds_identical_weights_and_seed_changes_them():
    first = build_model(ModelConfig()).model.state_dict()
    second = build_model(ModelConfig()).model.state_dict()
    other = build_model(ModelConfig(tiny=TinyVlmConfig(init_seed=1))).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_lora_targets_language_model_only_by_default():
    model = apply_lora(build_model(ModelConfig()).model, LoraConfig())
    state = get_adapter_state(model)
    assert state and all("language_model" in k and "lora_" in k for k in state)
    assert not any(".default." in k for k in state)  # adapter name stripped
    assert all(t.device.type == "cpu" for t in state.values())


def test_modules_to_save_are_trained_and_in_the_adapter_state():
    model = apply_lora(build_model(ModelConfig()).model,
                       LoraConfig(modules_to_save=("multi_modal_projector",)))
    state = get_adapter_state(model)
    assert any("multi_modal_projector" in k for k in state)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("multi_modal_projector" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)


def test_adapter_round_trip_restores_exact_values():
    model = apply_lora(build_model(ModelConfig()).model, LoraConfig())
    original = get_adapter_state(model)
    changed = {k: v + 1.0 for k, v in original.items()}
    set_adapter_state(model, changed)
    assert all(torch.equal(get_adapter_state(model)[k], changed[k]) for k in original)
    set_adapter_state(model, original)
    assert all(torch.equal(get_adapter_state(model)[k], original[k]) for k in original)
    assert state_nbytes(original) == sum(v.numel() * 4 for v in original.values())


def test_train_batch_masks_the_prompt_and_keeps_the_answer():
    built = build_model(ModelConfig())
    collator = Collator(built.processor, max_length=64)
    batch = collator.train_batch([_row("seven"), _row("two", with_image=False)])
    tok = built.processor.tokenizer
    answer_tokens = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX].tolist()
    assert tok.decode(answer_tokens).strip() == "seven</s>"
    assert batch["pixel_values"].shape[0] == 1  # only the row with an image contributes pixels
    image_id = tok.convert_tokens_to_ids("<image>")
    assert (batch["input_ids"][0] == image_id).sum() == (32 // 8) ** 2
    assert (batch["input_ids"][1] == image_id).sum() == 0
    loss = built.model(**batch).loss
    assert torch.isfinite(loss)


def test_generation_batch_is_left_padded():
    built = build_model(ModelConfig())
    collator = Collator(built.processor, max_length=64)
    batch = collator.generation_batch([_row(), _row(with_image=False)])
    assert batch["attention_mask"][1, 0] == 0 and batch["attention_mask"][1, -1] == 1
    assert batch["attention_mask"][0].all()


def test_lora_on_the_output_head_ships_no_base_weight():
    # PEFT would add lm_head's frozen base weight to the state when LoRA targets it; we never ship it.
    built = build_model(ModelConfig(tiny=TinyVlmConfig(vision_layers=1, text_layers=1)))
    model = apply_lora(built.model, LoraConfig(rank=2, target_modules=r".*(q_proj|lm_head)"))
    state = get_adapter_state(model)
    assert any("lm_head.lora_A" in k for k in state)
    assert not [k for k in state if "base_layer" in k or "lora_" not in k]
    set_adapter_state(model, state)  # the same keys load back
