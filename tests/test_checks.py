"""Registry-aware checks join schema problems in one error."""

import pytest

import fedray  # noqa: F401  (registers the checks)
from fedray.config import scenario_from_dict
from fedray.errors import ConfigError


def test_schema_and_registry_problems_are_reported_together(tmp_path):
    raw = {"train": {"lr": -1}, "strategy": {"name": "fedyogii"}, "model": {"name": "nope"},
           "partition": {"name": "iid", "num_clients": 2}, "federation": {"clients_per_round": 2},
           "data": {"root": str(tmp_path / "missing")}}
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(raw)
    problems = info.value.problems
    assert any(p.startswith("train.lr") for p in problems)
    assert any("unknown strategy 'fedyogii'" in p for p in problems)
    assert any(p.startswith("model.name") and "tiny-vlm" in p for p in problems)
    assert any(p.startswith("data.root") for p in problems)
    assert len(problems) == 4


def test_strategy_parameters_are_checked_against_the_strategy():
    with pytest.raises(ConfigError, match="strategy.momentum: strategy 'fedavg' has no parameter 'momentum'"):
        scenario_from_dict({"strategy": {"name": "fedavg", "momentum": 0.9}})
