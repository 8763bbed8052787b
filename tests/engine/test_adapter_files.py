"""Adapters are PEFT adapter directories: PeftModel.from_pretrained loads them and gives fedray's logits."""

from __future__ import annotations

import json
import stat

import pytest
import torch
from peft import PeftModel, get_peft_model_state_dict
from safetensors import safe_open

from fedray.config.schema import LoraConfig, ModelConfig, TinyVlmConfig
from fedray.data.schema import encode_png
from fedray.engine.adapter_files import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    adapter_weights_path,
    has_adapter,
    read_adapter,
    read_adapter_config,
    write_adapter_dir,
)
from fedray.errors import FedRayError
from fedray.models import build_model
from fedray.models.collate import Collator
from fedray.models.lora import apply_lora, get_adapter_state, peft_adapter_config, set_adapter_state

TINY = ModelConfig(tiny=TinyVlmConfig(text_layers=1, vision_layers=1))
# LoRA on the language model, the projector trained in full, and a `lora.trainable` extra (the final norm)
LORA = LoraConfig(rank=2, train_projector=True, trainable=(r"model\.language_model\.norm",))


def _batch(processor) -> dict[str, torch.Tensor]:
    from PIL import Image

    rows = [{"id": str(i), "image": encode_png(Image.new("RGB", (32, 32), (40 * i, 90, 200 - 30 * i))),
             "text": None, "question": "Which digit is shown?", "choices": None, "answer": str(i)}
            for i in range(3)]
    batch = Collator(processor, 64).train_batch(rows)
    batch.pop("labels")
    return batch


def _trained_model(lora: LoraConfig = LORA):
    """The tiny model, wrapped as fedray wraps it, with every adapter tensor moved off its init."""
    built = build_model(TINY)
    model = apply_lora(built.model, lora, built.family)
    generator = torch.Generator().manual_seed(0)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=generator)
             for k, v in get_adapter_state(model).items()}
    set_adapter_state(model, state)
    return model.eval(), built.processor


@pytest.fixture(scope="module")
def trained():
    return _trained_model()


def test_peft_loads_the_directory_and_gives_the_same_logits(trained, tmp_path):
    model, processor = trained
    batch = _batch(processor)
    with torch.no_grad():
        expected = model(**batch).logits
    write_adapter_dir(tmp_path / "best_adapter", get_adapter_state(model), peft_adapter_config(model))

    loaded = PeftModel.from_pretrained(build_model(TINY).model, tmp_path / "best_adapter").eval()
    with torch.no_grad():
        got = loaded(**batch).logits
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    untouched = build_model(TINY).model.eval()  # the adapter matters: the bare base answers differently
    with torch.no_grad():
        assert not torch.allclose(untouched(**batch).logits, expected, atol=1e-3)


def test_the_fedmllm_preset_round_trips_with_its_token_embeddings(tmp_path):
    """preset fedmllm trains the token embeddings and the projector in full (PEFT modules_to_save)."""
    model, processor = _trained_model(LoraConfig(rank=2, preset="fedmllm"))
    batch = _batch(processor)
    config = peft_adapter_config(model)
    assert set(config["modules_to_save"]) == {"embed_tokens", "multi_modal_projector"}
    write_adapter_dir(tmp_path, get_adapter_state(model), config)
    loaded = PeftModel.from_pretrained(build_model(TINY).model, tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(**batch).logits, model(**batch).logits, atol=1e-6, rtol=0)


def test_the_directory_holds_peft_names_and_config_in_readable_files(trained, tmp_path):
    model, _ = trained
    directory = write_adapter_dir(tmp_path / "global_adapter", get_adapter_state(model),
                                  peft_adapter_config(model))
    with safe_open(str(directory / ADAPTER_WEIGHTS), "pt") as f:
        keys, metadata = set(f.keys()), f.metadata()
    assert keys == set(get_peft_model_state_dict(model, save_embedding_layers=False))
    assert metadata == {"format": "pt"}
    config = json.loads((directory / ADAPTER_CONFIG).read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 2
    # the projector and the `lora.trainable` extra are PEFT modules_to_save, saved whole
    assert set(config["modules_to_save"]) == {"multi_modal_projector", "model.language_model.norm"}
    assert any(k.endswith("language_model.norm.weight") for k in keys)
    for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o644
    assert not list(directory.glob("*.tmp"))


def test_older_run_directories_are_still_read(tmp_path):
    from safetensors.torch import save_file

    state = {"base_model.model.x.lora_A.weight": torch.ones(2, 3)}
    save_file(state, str(tmp_path / "global_adapter.safetensors"))
    assert adapter_weights_path(tmp_path, "global_adapter") == tmp_path / "global_adapter.safetensors"
    assert torch.equal(read_adapter(tmp_path, "global_adapter")["base_model.model.x.lora_A.weight"],
                       torch.ones(2, 3))
    assert read_adapter_config(tmp_path, "global_adapter") is None
    assert has_adapter(tmp_path, "global_adapter") and not has_adapter(tmp_path, "best_adapter")
    with pytest.raises(FedRayError, match="best_adapter"):
        read_adapter(tmp_path, "best_adapter")


def test_the_new_layout_wins_over_an_older_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"k": torch.zeros(1)}, str(tmp_path / "global_adapter.safetensors"))
    write_adapter_dir(tmp_path / "global_adapter", {"k": torch.ones(1)})
    assert torch.equal(read_adapter(tmp_path, "global_adapter")["k"], torch.ones(1))
    assert not (tmp_path / "global_adapter" / ADAPTER_CONFIG).exists()  # no config given, none written
