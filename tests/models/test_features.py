"""Frozen-encoder features: with the vision tower answering from cache, losses, gradients of every
trainable parameter, whole fits and generations are those of the uncached model; a tower that trains or
carries LoRA is never cached."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.client.objectives import LocalObjective
from fedray.client.prepared import PreparedStore
from fedray.client.train import local_train
from fedray.config.schema import LoraConfig, ModelConfig, TinyVlmConfig, TrainConfig
from fedray.data.modality import BOTH, IMAGE, TEXT, mask_rows
from fedray.data.sources import read_source
from fedray.models import build_model
from fedray.models.collate import Collator
from fedray.models.features import StandIn, VisionFeatures, unsupported_reason
from fedray.models.lora import apply_lora, get_adapter_state
from fedray.seeding import torch_seeded
from tests.models.test_assembled import ROWS as ASSEMBLED_ROWS
from tests.models.test_assembled import _cfg as assembled_cfg
from tests.models.test_assembled import tiny_assets  # noqa: F401  (a fixture)

TINY = ModelConfig(max_length=64, tiny=TinyVlmConfig(text_layers=2, vision_layers=2))
LORA = LoraConfig(rank=4, target_modules=r".*language_model.*(q_proj|v_proj)", train_projector=True)


def _model(cfg: ModelConfig = TINY, lora: LoraConfig = LORA):
    built = build_model(cfg)
    with torch_seeded(0):
        return apply_lora(built.model, lora, built.family), Collator(built.processor, cfg.max_length)


@pytest.fixture(scope="module")
def rows():
    table = read_source("digits", {"image_size": 32}).splits["train"].slice(0, 24)
    masks = [BOTH, IMAGE, TEXT, BOTH, IMAGE, IMAGE] * 4
    return table, masks, mask_rows(table.to_pylist(), masks)


def _loss_and_grads(model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _assert_same_step(model, features: VisionFeatures, batch: dict) -> None:
    expected_loss, expected = _loss_and_grads(model, batch)
    cached = dict(batch, pixel_values=features.compute(batch["pixel_values"]))
    loss, grads = _loss_and_grads(model, cached)
    assert torch.equal(loss, expected_loss)
    assert grads.keys() == expected.keys() and all(torch.equal(grads[k], expected[k]) for k in grads)


def test_cached_output_gives_the_same_loss_and_gradients_on_llava(rows):
    model, collator = _model()
    features = VisionFeatures.attach(model)
    assert features is not None and features.feature_shape == (17, 64)  # 16 patches + CLS, width 64
    assert isinstance(model.get_base_model().model.vision_tower, StandIn)
    _, _, samples = rows
    for start in (0, 8, 16):
        _assert_same_step(model, features, collator.train_batch(samples[start: start + 8]))
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("multi_modal_projector" in n for n in trained)  # the projector trains on cached output


def test_a_whole_fit_and_generation_are_unchanged_by_prepared_samples_and_features(rows, tmp_path):
    table, masks, samples = rows
    cfg = TrainConfig(local_steps=4, batch_size=4, lr=1e-2)

    plain, collator = _model()
    start = get_adapter_state(plain)
    expected = local_train(plain, collator, samples, cfg, LocalObjective(), start, np.random.default_rng(3))

    cached, collator = _model()
    store = PreparedStore(collator, tmp_path, VisionFeatures.attach(cached))
    store.add("train", table)
    prepared = store.encodings("train", range(len(masks)), masks)
    stats = local_train(cached, collator, prepared, cfg, LocalObjective(), start, np.random.default_rng(3))
    assert stats == expected
    after, want = get_adapter_state(cached), get_adapter_state(plain)
    assert all(torch.equal(after[k], want[k]) for k in want)

    from fedray.client.evaluate import generate_answers

    generated = generate_answers(cached, collator, prepared, 5, 3)
    assert generated == generate_answers(plain, collator, samples, 5, 3)


@pytest.mark.parametrize("lora", [
    LoraConfig(rank=4, vision=True),  # the family preset with LoRA on the tower's attention
    LoraConfig(rank=4, target_modules=r".*vision_tower.*\.(q_proj|v_proj)"),
    LoraConfig(rank=4, modules_to_save=("vision_tower",)),
])
def test_a_tower_that_trains_is_never_cached(lora):
    model, _ = _model(lora=lora)
    assert unsupported_reason(model) is not None
    assert VisionFeatures.attach(model) is None
    assert not isinstance(model.get_base_model().model.vision_tower, StandIn)


def test_a_tower_with_dropout_is_never_cached():
    model, _ = _model()
    model.get_base_model().model.vision_tower.encoder.layers[0].self_attn.dropout = 0.1
    assert "dropout" in unsupported_reason(model)


def test_the_stand_in_still_runs_the_tower_on_pixels(rows):
    model, collator = _model()
    batch = collator.train_batch(rows[2][:6])
    expected, _ = _loss_and_grads(model, batch)
    VisionFeatures.attach(model)
    assert torch.equal(_loss_and_grads(model, batch)[0], expected)


def test_cached_output_gives_the_same_loss_and_gradients_on_assembled(tiny_assets):  # noqa: F811
    built = build_model(assembled_cfg(tiny_assets))
    with torch_seeded(0):
        model = apply_lora(built.model, LoraConfig(rank=4, train_projector=True), built.family)
    features = VisionFeatures.attach(model)
    assert features is not None and features.feature_shape == (1280, 2, 2)
    _assert_same_step(model, features, Collator(built.processor, max_length=96).train_batch(ASSEMBLED_ROWS))
