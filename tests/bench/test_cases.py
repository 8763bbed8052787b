"""The bench cases are the workloads docs/benchmarks.md promises, value for value."""

from __future__ import annotations

import re

import pytest

from fedray.bench.cases import CASES, DEFAULT_CASES, case_scenario, quick, select_cases
from fedray.registry import UnknownNameError


def test_reference_case_is_the_documented_workload():
    s = case_scenario(CASES.get("reference"))
    assert (s.data.source, s.partition.name, s.partition.num_clients, s.partition.options["alpha"]) == \
        ("digits", "dirichlet", 10, 0.5)
    assert (s.federation.clients_per_round, s.federation.rounds, s.federation.checkpoint_every) == (5, 10, 0)
    assert (s.train.local_steps, s.train.batch_size, s.train.optimizer, s.train.lr) == (20, 8, "adamw", 1e-3)
    assert (s.resources.actors, s.resources.cpus_per_actor) == (2, 1.0)
    assert (s.lora.rank, s.lora.alpha, s.lora.train_projector) == (8, 16.0, True)
    assert (s.eval.every, s.eval.at_start) == (0, False)  # only the final evaluation, which cannot be off
    tiny = s.model.tiny
    assert (s.model.name, tiny.image_size, tiny.patch_size) == ("tiny-vlm", 32, 8)
    assert (tiny.vision_hidden_size, tiny.vision_layers, tiny.vision_heads) == (64, 2, 4)
    assert (tiny.text_hidden_size, tiny.text_layers, tiny.text_heads, tiny.text_kv_heads) == (128, 2, 4, 2)
    assert s.strategy.name == "fedavg"


def test_overhead_and_scale_cases():
    overhead = case_scenario(CASES.get("overhead"))
    assert (overhead.partition.num_clients, overhead.partition.options["alpha"]) == (100, 100.0)
    assert (overhead.federation.clients_per_round, overhead.train.local_steps) == (50, 1)
    assert overhead.data.source == "digits" and overhead.federation.rounds == 10
    scale = case_scenario(CASES.get("scale"))
    assert (scale.partition.name, scale.partition.num_clients, scale.partition.min_client_size) == \
        ("iid", 10_000, 1)
    assert (scale.federation.clients_per_round, scale.train.local_steps) == (50, 1)
    # 4 scripts × 2,560 rows, 1 % held out: enough for 10,000 clients of at least one row.
    assert scale.data.source == "glyphs" and scale.data.options["max_per_class"] == 2560
    assert 4 * 2560 * (1 - scale.data.test_fraction) >= 10_000
    control = case_scenario(CASES.get("scale-control"))
    assert control.partition.num_clients == 100 and control.data == scale.data
    assert DEFAULT_CASES == ("reference", "overhead", "scale")


def test_limit_waves_and_quick_mode():
    assert CASES.get("reference").waves == 3 and CASES.get("overhead").waves == 25
    smoke = quick(CASES.get("reference"))
    assert (smoke.rounds, smoke.local_steps, smoke.num_clients) == (2, 1, 10)
    assert [c.name for c in select_cases("overhead, reference", quick_mode=True)] == ["overhead", "reference"]
    assert all(c.rounds == 2 for c in select_cases(None, quick_mode=True))
    with pytest.raises(UnknownNameError, match="unknown bench case 'refrence'.*Did you mean 'reference'"):
        select_cases("refrence")


def test_reference_model_has_the_issue_sizes_and_lora_targets():
    """256 intermediate (the builder's 2 × hidden) and LoRA on the language model's q_proj/v_proj only."""
    from fedray.models.base import build_model
    from fedray.models.lora import apply_lora, get_adapter_state

    s = case_scenario(CASES.get("reference"))
    built = build_model(s.model)
    assert built.model.config.text_config.intermediate_size == 256
    assert built.model.config.vision_config.intermediate_size == 128
    keys = get_adapter_state(apply_lora(built.model, s.lora, built.family))
    lora = {re.sub(r"\.layers\.\d+\.", ".layers.N.", k) for k in keys if ".lora_" in k}
    assert lora == {f"base_model.model.model.language_model.layers.N.self_attn.{p}.lora_{m}.weight"
                    for p in ("q_proj", "v_proj") for m in "AB"}
    assert any("multi_modal_projector" in k for k in keys)  # the trained projector travels with it
