"""Client objectives on the tiny model: FedProx, the adaptive layer-window prox, SCAFFOLD's client half."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.client.objectives import (
    OBJECTIVES,
    AdaptiveProx,
    FedProx,
    LocalObjective,
    ScaffoldObjective,
    build_objective,
    lm_layer_index,
    num_lm_layers,
)
from fedray.client.train import local_train
from fedray.config.params import describe_params
from fedray.config.schema import LoraConfig, ModelConfig, TinyVlmConfig, TrainConfig
from fedray.errors import ConfigError, FedRayError
from fedray.models.lora import adapter_parameters, get_adapter_state, set_adapter_state
from tests.client.tiny_setup import tiny_training_setup

TINY = ModelConfig(max_length=48, tiny=TinyVlmConfig(text_layers=4, vision_layers=1))
LORA = LoraConfig(rank=2, target_modules=r".*language_model.*(q_proj|v_proj)",
                  modules_to_save=("multi_modal_projector",))


@pytest.fixture(scope="module")
def setup():
    return tiny_training_setup(TINY, LORA)


def _train(setup, objective, steps=3, lr=1e-2, optimizer="adamw"):
    model, collator, rows, start = setup
    set_adapter_state(model, start)
    cfg = TrainConfig(local_steps=steps, batch_size=4, lr=lr, optimizer=optimizer)
    stats = local_train(model, collator, rows, cfg, objective, start, np.random.default_rng(0))
    return get_adapter_state(model), stats


def test_fedprox_with_zero_mu_matches_plain(setup):
    plain, _ = _train(setup, LocalObjective())
    prox0, _ = _train(setup, FedProx(mu=0.0))
    assert all(torch.equal(plain[k], prox0[k]) for k in plain)


def test_fedprox_pulls_towards_the_global_adapter(setup):
    start = setup[3]
    plain, _ = _train(setup, LocalObjective(), steps=4)
    strong, _ = _train(setup, FedProx(mu=1e4), steps=4)

    def drift(state):
        return sum(float((state[k] - start[k]).norm() ** 2) for k in state)

    assert drift(strong) < 0.5 * drift(plain)


def test_fedprox_loss_term_has_the_published_value(setup):
    model, _, _, start = setup
    set_adapter_state(model, start)
    run = FedProx(mu=0.5).begin(model, start)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        params[0].add_(2.0)  # every element moves by 2
    expected = 0.5 / 2 * 4.0 * params[0].numel()
    assert float(run.loss(model, torch.tensor(0.0)).detach()) == pytest.approx(expected, rel=1e-5)
    set_adapter_state(model, start)


def test_adaptive_prox_window_comes_from_module_paths_and_config(setup):
    model = setup[0]
    assert num_lm_layers(model) == 4
    assert lm_layer_index("base_model.model.model.language_model.layers.12.self_attn.q_proj.lora_A.x") == 12
    assert lm_layer_index("base_model.model.model.vision_tower.vision_model.encoder.layers.0.x") is None
    run = AdaptiveProx(mu=1.0, weight=0.5, skip_layers=1).begin(model, setup[3])
    names = {id(p): n for n, p in model.named_parameters()}
    layers = sorted({lm_layer_index(names[id(p)]) for p in run.params})
    assert layers == [1, 2], "4 layers, one free at each end"
    assert run.coefficient == pytest.approx(0.5)


def test_scaffold_zero_variates_one_step_matches_plain_sgd(setup):
    zeros = {k: torch.zeros_like(v) for k, v in setup[3].items()}
    plain, _ = _train(setup, LocalObjective(), steps=1, optimizer="sgd")
    scaffold, stats = _train(setup, ScaffoldObjective(server_variate=zeros), steps=1, optimizer="sgd")
    assert all(torch.allclose(plain[k], scaffold[k]) for k in plain)
    # Option II: c_i⁺ = c_i − c + (x − y)/(K·η) with c = c_i = 0, K = 1, η = 0.01.
    start = setup[3]
    for key, value in stats.extras["control_variate"].items():
        assert torch.allclose(value, (start[key] - scaffold[key]) / 0.01, atol=1e-5)
    assert all(torch.equal(stats.extras["control_delta"][k], stats.extras["control_variate"][k])
               for k in start)


def test_scaffold_corrects_gradients_by_c_minus_ci(setup):
    model, _, _, start = setup
    set_adapter_state(model, start)
    named = adapter_parameters(model)
    c = {k: torch.full_like(v, 0.5) for k, v in start.items()}
    c_i = {k: torch.full_like(v, 0.2) for k, v in start.items()}
    run = ScaffoldObjective(server_variate=c).for_client({"control_variate": c_i}).begin(model, start)
    for p in named.values():
        p.grad = torch.zeros_like(p)
    run.after_backward(model)
    assert all(torch.allclose(p.grad, torch.full_like(p, 0.3)) for p in named.values())
    for p in named.values():
        p.grad = None


def test_build_objective_errors():
    assert build_objective("fedprox", {"mu": 0.1}) == FedProx(mu=0.1)
    unknown = "objective.lambda: client objective 'fedprox' has no parameter 'lambda'; it accepts: mu"
    with pytest.raises(FedRayError, match=unknown):
        build_objective("fedprox", {"lambda": 1})
    with pytest.raises(FedRayError, match="objective.mu: got 'a lot' .*expected a number"):
        build_objective("fedprox", {"mu": "a lot"})
    with pytest.raises(FedRayError, match="objective.name: unknown client objective 'prox'.*fedprox"):
        build_objective("prox")


def test_direct_construction_is_checked_by_the_same_rules():
    with pytest.raises(ConfigError, match=r"fedprox.mu: got -1.0, must be >= 0"):
        FedProx(mu=-1.0)
    with pytest.raises(ConfigError) as info:
        AdaptiveProx(mu=-0.5, weight=-1.0, skip_layers=-2)
    assert info.value.problems == ["adaptive_prox.mu: got -0.5, must be >= 0",
                                   "adaptive_prox.weight: got -1.0, must be >= 0",
                                   "adaptive_prox.skip_layers: got -2, must be >= 0"]
    assert AdaptiveProx(skip_layers=0).skip_layers == 0 and FedProx(mu=0.0).mu == 0.0


def test_objective_parameters_are_described():
    rows = {row["name"]: row for row in describe_params(OBJECTIVES.params_class("adaptive_prox"))}
    assert rows["skip_layers"]["default"] == 4 and rows["skip_layers"]["bounds"] == ">= 0"
    assert all(row["help"] for row in rows.values())
    assert OBJECTIVES.params_class("plain") is LocalObjective


# One LoRA parameter name per family, as PEFT names them on the real module trees: (name, layer or None).
FAMILY_PARAM_NAMES = {
    "llava": [("base_model.model.model.language_model.layers.3.self_attn.q_proj.lora_A.default.weight", 3),
              ("base_model.model.model.vision_tower.vision_model.encoder.layers.3.self_attn.q_proj."
               "lora_A.default.weight", None)],
    "qwen2_vl": [("base_model.model.model.language_model.layers.5.mlp.up_proj.lora_B.default.weight", 5),
                 ("base_model.model.model.visual.blocks.5.attn.qkv.lora_A.default.weight", None)],
    "idefics3": [("base_model.model.model.text_model.layers.7.self_attn.v_proj.lora_A.default.weight", 7),
                 ("base_model.model.model.vision_model.encoder.layers.7.self_attn.v_proj.lora_A.default."
                  "weight", None)],
    "minicpmv": [("base_model.model.llm.model.layers.9.self_attn.q_proj.lora_A.default.weight", 9),
                 ("base_model.model.vpm.encoder.layers.9.self_attn.q_proj.lora_A.default.weight", None),
                 ("base_model.model.resampler.modules_to_save.default.kv_proj.weight", None)],
    "assembled": [("base_model.model.language_model.model.layers.2.self_attn.q_proj.lora_A.default.weight",
                   2),
                  ("base_model.model.vision_tower.blocks.2.0.expand_conv.lora_A.default.weight", None)],
}


@pytest.mark.parametrize("family", sorted(FAMILY_PARAM_NAMES))
def test_layer_index_follows_each_family_s_module_paths(family):
    for name, layer in FAMILY_PARAM_NAMES[family]:
        assert lm_layer_index(name) == layer, name


class _FakeMiniCPMV(torch.nn.Module):
    """MiniCPM-V's layout (``llm.model.layers.N``, ``vpm``, ``resampler``) with 6 decoder layers."""

    def __init__(self) -> None:
        super().__init__()
        self.config = type("Config", (), {"num_hidden_layers": 6})()
        decoder = torch.nn.Module()
        decoder.layers = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(6))
        self.llm = torch.nn.Module()
        self.llm.model = decoder
        self.vpm = torch.nn.Linear(2, 2)
        self.resampler = torch.nn.Linear(2, 2)


def test_adaptive_prox_window_on_minicpmv_layout():
    model = _FakeMiniCPMV()
    run = AdaptiveProx(skip_layers=2).begin(model, {})
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted({lm_layer_index(names[id(p)]) for p in run.params}) == [2, 3]
    assert len(run.params) == 4  # weight and bias of layers 2 and 3; vpm and resampler adapt freely


def test_a_window_that_selects_nothing_is_an_error_naming_what_it_saw():
    expected = (r"window \[3, 2\] of the language model's 6 layers selects no trainable parameter "
                r"\(trainable layers found: \[0, 1, 2, 3, 4, 5\]")
    with pytest.raises(FedRayError, match=expected):
        AdaptiveProx(skip_layers=3).begin(_FakeMiniCPMV(), {})
