"""Starting (or joining) Ray with the settings fedray needs."""

from __future__ import annotations

import logging
import os

import ray

from fedray.config.schema import ResourcesConfig

#: Environment every fedray worker process gets: nothing may reach a model hub at run time.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
              "HF_DATASETS_OFFLINE": "1"}


def ensure_ray(resources: ResourcesConfig) -> bool:
    """Connect to ``resources.ray_address`` or start a local Ray; True when this call started it."""
    if ray.is_initialized():
        return False
    os.environ.update(WORKER_ENV)
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING,
                  runtime_env={"env_vars": WORKER_ENV})
    address = resources.ray_address or os.environ.get("RAY_ADDRESS")  # set inside a Ray job
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    return True
