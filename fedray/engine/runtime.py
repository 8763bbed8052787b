"""Starting (or joining) Ray with the settings fedray needs, and nothing more.

No dashboard; the cluster's own logging at WARNING; and the actors' output (worker stdout/stderr, e.g.
library deprecation warnings printed once per actor) stays in Ray's session logs instead of being
forwarded to the driver's terminal, unless asked for: ``fedray --debug`` or ``FEDRAY_ACTOR_LOGS=1``.
A client's failure still reaches the driver, with its traceback, through the failed call itself.
"""

from __future__ import annotations

import logging
import os

import ray

from fedray.config.schema import ResourcesConfig

#: Environment every fedray worker process gets: nothing may reach a model hub at run time.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
              "HF_DATASETS_OFFLINE": "1"}

#: Set to 1 to see the actors' output on the driver's terminal.
ACTOR_LOGS_ENV = "FEDRAY_ACTOR_LOGS"


def actor_logs_wanted() -> bool:
    """Whether the actors' output is forwarded to the driver (``--debug`` or FEDRAY_ACTOR_LOGS=1)."""
    return os.environ.get(ACTOR_LOGS_ENV, "") in ("1", "true", "yes") or \
        logging.getLogger("fedray").isEnabledFor(logging.DEBUG)


def ensure_ray(resources: ResourcesConfig) -> bool:
    """Connect to ``resources.ray_address`` or start a local Ray; True when this call started it."""
    if ray.is_initialized():
        return False
    os.environ.update(WORKER_ENV)
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=actor_logs_wanted(),
                  runtime_env={"env_vars": WORKER_ENV})
    address = resources.ray_address or os.environ.get("RAY_ADDRESS")  # set inside a Ray job
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    return True
