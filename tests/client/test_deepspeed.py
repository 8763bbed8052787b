"""The DeepSpeed trainer on the tiny model (CPU, gloo, a process group of one), against the torch one.

ZeRO-0/1/2 run the same float32 arithmetic as the torch loop (measured: ≤ 4e-7 apart after 3 AdamW
steps); ZeRO-3 flattens, partitions and re-gathers the params, which reorders a few sums (measured:
≤ 2e-5). The tolerance below, 1e-4 absolute on LoRA weights that move by ~3e-2, holds for all of them.
ZeRO-3 runs with ``stage3_param_persistence_threshold: 0`` so that even the small LoRA matrices are
partitioned (DeepSpeed's default keeps params under 1e5 elements whole), the case that needs gathering.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.client.deepspeed import DeepSpeedParams, DeepSpeedTrainer, ds_config, gradient_edit_problem
from fedray.client.objectives import FedProx, LocalObjective, ScaffoldObjective
from fedray.client.trainers import TorchTrainer, build_trainer
from fedray.config import scenario_from_dict
from fedray.config.schema import LoraConfig, ModelConfig, TinyVlmConfig, TrainConfig, TrainEngineConfig
from fedray.errors import ConfigError, FedRayError
from fedray.models.lora import get_adapter_state, set_adapter_state
from tests.client.tiny_setup import tiny_training_setup

TINY = ModelConfig(max_length=48, tiny=TinyVlmConfig(text_layers=2, vision_layers=1))
LORA = LoraConfig(rank=2, target_modules=r".*language_model.*(q_proj|v_proj)",
                  modules_to_save=("multi_modal_projector",))
TOLERANCE = 1e-4
PARTITION_ALL = {"zero_optimization": {"stage3_param_persistence_threshold": 0}}


@pytest.fixture(scope="module")
def setup():
    return tiny_training_setup(TINY, LORA)


def _fit(setup, engine, objective=None, optimizer="adamw", steps=3):
    model, collator, rows, start = setup
    set_adapter_state(model, start)
    cfg = TrainConfig(local_steps=steps, batch_size=4, lr=1e-2, optimizer=optimizer)
    stats, state = engine.fit(model, collator, rows, cfg, objective or LocalObjective(), start,
                              np.random.default_rng(0))
    return state, stats


def _deepspeed(stage, **fields):
    return DeepSpeedTrainer(DeepSpeedParams(zero_stage=stage, **fields), PARTITION_ALL)


def _max_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def torch_results(setup):
    return {opt: _fit(setup, TorchTrainer(), optimizer=opt) for opt in ("adamw", "sgd")}


def test_registry_builds_each_engine():
    assert isinstance(build_trainer(TrainEngineConfig()), TorchTrainer)
    assert isinstance(build_trainer(TrainEngineConfig(name="deepspeed")), DeepSpeedTrainer)


def test_config_splits_the_batch_over_ranks_and_clips_as_asked():
    cfg = ds_config(DeepSpeedParams(zero_stage=2, offload_optimizer=True),
                    TrainConfig(batch_size=8, max_grad_norm=0.5), world_size=2)
    assert cfg["train_micro_batch_size_per_gpu"] == 4 and cfg["train_batch_size"] == 8
    assert cfg["gradient_clipping"] == 0.5 and cfg["zero_optimization"]["offload_optimizer"]
    # DeepSpeed's own default clips at 1.0: no clipping must be said explicitly
    assert ds_config(DeepSpeedParams(), TrainConfig(max_grad_norm=None), 1)["gradient_clipping"] == 0.0


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
@pytest.mark.parametrize("stage", [0, 2, 3])
def test_zero_stage_matches_the_torch_loop(setup, torch_results, stage, optimizer):
    expected, expected_stats = torch_results[optimizer]
    state, stats = _fit(setup, _deepspeed(stage), optimizer=optimizer)
    start = setup[3]
    print(f"ZeRO-{stage} {optimizer}: max |Δ| vs torch {_max_diff(state, expected):.1e}, "
          f"weights moved {_max_diff(state, start):.1e}")  # shown with pytest -s
    assert _max_diff(state, start) > 20 * TOLERANCE  # it trained
    assert _max_diff(state, expected) < TOLERANCE
    assert stats.mean_loss == pytest.approx(expected_stats.mean_loss, rel=1e-4)
    assert stats.steps == expected_stats.steps == 3


def test_zero3_reads_back_the_whole_adapter_and_leaves_a_plain_model(setup):
    model, _, _, start = setup
    state, _ = _fit(setup, _deepspeed(3), steps=1)
    assert set(state) == set(start)
    for key, tensor in state.items():
        assert tensor.shape == start[key].shape and tensor.numel() > 0 and torch.isfinite(tensor).all()
    # the model is whole again: no ZeRO attributes, every param has its data
    assert not any(hasattr(p, "ds_id") or p.numel() == 0 for p in model.parameters())
    assert _max_diff(get_adapter_state(model), state) == 0.0


@pytest.mark.parametrize("stage", [2, 3])
def test_fedprox_under_deepspeed_matches_torch(setup, stage):
    objective = FedProx(mu=50.0)  # strong enough to change the result visibly
    expected, _ = _fit(setup, TorchTrainer(), objective)
    plain, _ = _fit(setup, TorchTrainer())
    state, _ = _fit(setup, _deepspeed(stage), objective)
    assert _max_diff(expected, plain) > 10 * TOLERANCE
    assert _max_diff(state, expected) < TOLERANCE


def test_scaffold_correction_under_zero0_matches_torch(setup):
    start = setup[3]
    server = {k: torch.full_like(v, 0.05) for k, v in start.items()}
    objective = ScaffoldObjective(server_variate=server)
    expected, expected_stats = _fit(setup, TorchTrainer(), objective, optimizer="sgd")
    state, stats = _fit(setup, _deepspeed(0), objective, optimizer="sgd")
    assert _max_diff(state, expected) < TOLERANCE
    assert _max_diff(stats.extras["control_delta"], expected_stats.extras["control_delta"]) < 1e-3


def test_scaffold_under_zero2_is_refused_with_the_fix(setup):
    """One rule (gradient_edit_problem), applied by the trainer at fit time and by the scenario check."""
    assert gradient_edit_problem(2, ScaffoldObjective()) and not gradient_edit_problem(2, FedProx())
    assert not gradient_edit_problem(0, ScaffoldObjective())
    with pytest.raises(FedRayError, match="zero_stage: 0"):
        _fit(setup, _deepspeed(2), ScaffoldObjective(server_variate=dict(setup[3])))
    with pytest.raises(ConfigError, match="zero_stage: 0"):
        scenario_from_dict({"strategy": {"name": "scaffold"}, "train": {"optimizer": "sgd",
                            "engine": {"name": "deepspeed", "zero_stage": 2}}})


def test_sgd_with_optimizer_offload_matches_torch(setup, torch_results):
    state, _ = _fit(setup, _deepspeed(2, offload_optimizer=True), optimizer="sgd")
    assert _max_diff(state, torch_results["sgd"][0]) < TOLERANCE
