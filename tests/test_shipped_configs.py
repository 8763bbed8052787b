"""Every shipped scenario loads and validates (including registry-aware checks)."""

from pathlib import Path

import pytest

import fedray  # noqa: F401  (registers the registry-aware checks)
from fedray.config import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_there_are_shipped_scenarios():
    assert any(p.name == "mini.yaml" for p in SCENARIOS)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario_validates(path):
    scenario = load_scenario(path)
    assert scenario.name
    assert scenario.federation.clients_per_round <= scenario.partition.num_clients
