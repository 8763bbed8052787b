"""The local loop's hand-offs between fits: a fit leaves the model training, without gradients, and trains
in training mode whatever mode it found the model in; the torch seed is the same state on every path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.client.objectives import LocalObjective
from fedray.client.train import local_train
from fedray.config.schema import LoraConfig, ModelConfig, TinyVlmConfig, TrainConfig
from fedray.models.lora import get_adapter_state, set_adapter_state
from fedray.seeding import seed_torch, torch_seeded
from tests.client.tiny_setup import tiny_training_setup

TINY = ModelConfig(max_length=48, tiny=TinyVlmConfig(text_layers=1, vision_layers=1))
# LoRA dropout: a fit in eval mode would train without it, and give other numbers.
LORA = LoraConfig(rank=2, dropout=0.5, target_modules=r".*language_model.*(q_proj|v_proj)")


@pytest.fixture(scope="module")
def setup():
    return tiny_training_setup(TINY, LORA, num_rows=8)


def _fit(setup, seed: int = 0):
    model, collator, rows, start = setup
    set_adapter_state(model, start)
    cfg = TrainConfig(local_steps=2, batch_size=4, lr=1e-2)
    with torch_seeded(seed):
        local_train(model, collator, rows, cfg, LocalObjective(), start, np.random.default_rng(0))
    return get_adapter_state(model)


def test_a_fit_leaves_the_model_training_and_without_gradients(setup):
    model = setup[0]
    model.eval()
    _fit(setup)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_a_fit_trains_in_training_mode_whatever_mode_it_found(setup):
    model = setup[0]
    model.eval()
    after_eval = _fit(setup)
    model.train()
    after_train = _fit(setup)
    assert all(torch.equal(after_eval[k], after_train[k]) for k in after_eval)
    other_seed = _fit(setup, seed=1)  # the dropout is live: another seed trains differently
    assert any(not torch.equal(after_eval[k], other_seed[k]) for k in after_eval)


def test_seed_torch_gives_the_state_of_manual_seed():
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(7)
    seed_torch(123)
    assert torch.equal(torch.rand(5), expected)
