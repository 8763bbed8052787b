"""cluster.yaml is a valid Ray cluster-launcher config (checked offline, against Ray's own schema)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

import fedray

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text(encoding="utf-8"))


def test_cluster_yaml_matches_rays_schema(config):
    jsonschema = pytest.importorskip("jsonschema")
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)


def test_cluster_yaml_passes_rays_own_preparation_and_validation(config):
    """What `ray up` does with the file before it talks to AWS: fill in the provider's defaults, then
    validate (the raw file lacks fields such as cluster_synced_files that the defaults add)."""
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["available_node_types"]["head"]["max_workers"] == 0


def test_a_typo_is_caught(config):
    jsonschema = pytest.importorskip("jsonschema")
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "idle_timout_minutes": 5}, schema)


def test_head_takes_no_work_and_workers_have_gpus(config):
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    assert any("--num-cpus=0" in command for command in config["head_start_ray_commands"])
    workers = [n for name, n in nodes.items() if name != config["head_node_type"]]
    assert workers and all(n["resources"].get("GPU", 0) >= 1 for n in workers)
    assert all(n["min_workers"] <= n["max_workers"] <= config["max_workers"] for n in workers)
    assert config["idle_timeout_minutes"] > 0


def test_setup_installs_this_fedray_and_its_exact_ray(config):
    commands = "\n".join(config["setup_commands"])
    pinned = next(line for line in (ROOT / "pyproject.toml").read_text().splitlines() if '"ray[' in line)
    ray_version = pinned.split("==")[1].split('"')[0]
    assert f"=={ray_version}" in commands and "torch==" in commands
    assert "/home/ubuntu/fedray" in commands and fedray.__version__ == "0.1.0"
    mounts = config["file_mounts"]
    assert mounts["/home/ubuntu/fedray"] == "."  # scenarios/ and tune_spaces/ travel with the tree
    assert (ROOT / "scenarios").is_dir() and (ROOT / "tune_spaces").is_dir()
    assert any("data" in remote for remote in mounts)
