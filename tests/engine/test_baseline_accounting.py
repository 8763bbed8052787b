"""Baselines say what happened: zero-shot has no rounds and no strategy; local and centralized send
nothing; summary.json names a strategy only where one shaped the result."""

from __future__ import annotations

import pytest

from fedray.config import scenario_from_dict
from fedray.engine.modes import build_run_mode


def mode_of(name: str):
    return build_run_mode(scenario_from_dict({"mode": name, "federation": {"rounds": 3}}))


@pytest.mark.parametrize("name, communicates, uses_strategy", [
    ("federated", True, True), ("centralized", False, True), ("local", False, False),
    ("zero_shot", False, False)])
def test_what_each_mode_sends_and_whether_a_strategy_shapes_it(name, communicates, uses_strategy):
    mode = mode_of(name)
    assert (mode.communicates, mode.uses_strategy) == (communicates, uses_strategy)
    assert mode.traffic(300, 200) == ((300, 200) if communicates else (0, 0))


def test_baseline_headers_say_what_happened():
    zero = mode_of("zero_shot").header(6)
    assert "no rounds" in zero and "no strategy" in zero and "3 rounds" not in zero
    assert "no communication" in mode_of("local").header(6)
    assert mode_of("federated").header(6) == "6 clients, 3 per round, 3 rounds"


@pytest.mark.parametrize("name, strategy", [("federated", "fedadam"), ("centralized", "fedadam"),
                                            ("local", None), ("zero_shot", None)])
def test_the_summary_names_a_strategy_only_where_one_shaped_the_result(name, strategy, tmp_path):
    from fedray.engine.summary import RunSummary

    scenario = scenario_from_dict({"mode": name, "strategy": {"name": "fedadam"}})
    assert RunSummary(tmp_path).to_json(scenario)["strategy"] == strategy
