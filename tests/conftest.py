"""Shared fixtures: offline environment, a session-scoped local Ray cluster, tiny model directories."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Prepared samples and vision features go to a directory of this test session, never to the user's
# cache (set before any Ray worker starts, so actors inherit it).
os.environ["FEDRAY_CACHE"] = tempfile.mkdtemp(prefix="fedray-test-cache-")
# Sweep-signing keys (fedray.tune.trust) go to a temporary config directory, not the user's.
os.environ["FEDRAY_CONFIG_DIR"] = tempfile.mkdtemp(prefix="fedray-test-config-")
# datasets converts parquet/json/csv copies into its cache: keep those conversions out of the user's.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="fedray-test-hf-datasets-")


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the whole session, with exactly 2 CPUs (what CI has), started as a run starts
    its own (fedray/engine/local_ray.py: no dashboard or API server, no autoscaler or log monitor)."""
    import ray

    from fedray.engine.local_ray import start_local_ray
    from fedray.engine.runtime import WORKER_ENV

    start_local_ray(2, {}, log_monitor=False, log_to_driver=False, runtime_env={"env_vars": WORKER_ENV})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny VLM saved once as a Hugging Face directory, so tests exercise ``from_pretrained``."""
    from fedray.config.schema import ModelConfig
    from fedray.models.tiny_vlm import save_tiny_vlm

    return save_tiny_vlm(ModelConfig(), tmp_path_factory.mktemp("tiny-vlm"))
