"""``model.name=hf model.path=<org>/<model>``: a model in the local hub cache validates and builds offline."""

from __future__ import annotations

import shutil

import pytest

import fedray.checks  # noqa: F401  (registers the path checks with the loader)
from fedray.config import scenario_from_dict
from fedray.errors import ConfigError
from fedray.models import build_model

REVISION = "a" * 40


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_model_dir):
    """A hub cache holding 'some-org/tiny-vlm': models--org--name/snapshots/<rev>/ named by refs/main."""
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--some-org--tiny-vlm"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_a_cached_model_id_validates_and_builds(hub_cache):
    scenario = scenario_from_dict({"model": {"name": "hf", "path": "some-org/tiny-vlm"}})
    built = build_model(scenario.model)
    assert built.family == "llava" and built.processor is not None
    assert sum(p.numel() for p in built.model.parameters()) > 0


def test_an_id_missing_from_the_cache_is_one_validation_problem(hub_cache):
    missing = (r"model\.path: 'other-org/none' is neither a local directory nor a model in the local "
               r"Hugging Face cache .*hf download other-org/none")
    with pytest.raises(ConfigError, match=missing):
        scenario_from_dict({"model": {"name": "hf", "path": "other-org/none"}})
    with pytest.raises(ConfigError, match=r"model\.path: '/no/such/dir' does not exist"):
        scenario_from_dict({"model": {"name": "hf", "path": "/no/such/dir"}})


def test_a_snapshot_without_config_is_named(hub_cache):
    (hub_cache / "models--some-org--tiny-vlm" / "snapshots" / REVISION / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"cached snapshot of 'some-org/tiny-vlm' .* has no config\.json"):
        scenario_from_dict({"model": {"name": "hf", "path": "some-org/tiny-vlm"}})
