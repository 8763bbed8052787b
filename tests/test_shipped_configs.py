"""Every shipped scenario loads and validates (including registry-aware checks)."""

from pathlib import Path

import pytest

import fedray  # noqa: F401  (registers the registry-aware checks)
from fedray.config import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.yaml"))
DATASET_DIRS = ("hateful_memes", "CrisisMMD_v2.0", "vqa_rad", "medalpaca", "Slake1.0")


@pytest.fixture(autouse=True)
def user_paths(tmp_path, monkeypatch):
    """Paper scenarios read ${FEDRAY_DATA}/<dataset> and ${FEDRAY_MODEL}; give them directories."""
    for name in DATASET_DIRS:
        (tmp_path / "data" / name).mkdir(parents=True)
    (tmp_path / "model").mkdir()
    monkeypatch.setenv("FEDRAY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FEDRAY_MODEL", str(tmp_path / "model"))
    monkeypatch.setenv("FEDRAY_ASSETS", str(tmp_path))


def test_there_are_shipped_scenarios():
    assert any(p.name == "mini.yaml" for p in SCENARIOS)


@pytest.mark.parametrize("path", SCENARIOS, ids=[str(p.relative_to(ROOT / "scenarios")) for p in SCENARIOS])
def test_scenario_validates(path):
    scenario = load_scenario(path)
    assert scenario.name
    assert scenario.federation.clients_per_round <= scenario.partition.num_clients


def test_generated_grid_is_up_to_date():
    import importlib.util

    spec = importlib.util.spec_from_file_location("grid", ROOT / "scenarios" / "grid.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    assert grid.main(["--check"]) == 0, "run: python scenarios/grid.py"
    # hateful_memes, crisismmd, offline, evidence: 24 each; medical: single and mix, each also -aug
    assert len(grid.all_scenarios()) == 24 * 4 + 4 + 1
