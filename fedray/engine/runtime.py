"""Starting (or joining) Ray with the settings fedray needs, and nothing more.

No dashboard. A local cluster that this process starts prestarts no idle Python workers
(:data:`LEAN_SYSTEM_CONFIG`): Ray would start one per CPU when it starts and more when the driver
connects, and in a run none of them hosted an actor (each actor got a worker of its own, measured with
fedray/bench/proctree.py), so they only took memory (about 80 MiB each) and start-up CPU.
The cluster's own logging at WARNING, less the notice Ray prints on every start of a local
cluster that token authentication is on (its default, which stays); and the actors' output (worker
stdout/stderr, e.g. library deprecation warnings printed once per actor) stays in Ray's session logs
instead of being forwarded to the driver's terminal. Both unless asked for: ``fedray --debug`` or
``FEDRAY_ACTOR_LOGS=1``.
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

#: Ray settings of a local cluster started for one run: workers start when an actor needs one.
LEAN_SYSTEM_CONFIG = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}

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
        if not actor_logs_wanted():
            _quiet_auth_notice()
        ray.init(num_cpus=os.cpu_count() or 1, _system_config=LEAN_SYSTEM_CONFIG, **kwargs)
    return True


#: The logger of Ray's notice, and the notice's first words.
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
_AUTH_NOTICE = "Token authentication is enabled for this Ray cluster"


def _quiet_auth_notice() -> None:
    """Drop Ray's "token authentication is enabled" notice (not the mode itself: setting RAY_AUTH_MODE
    ourselves would skip Ray's own set-up of it). Ray's other warnings still show."""
    notice = logging.getLogger(_AUTH_LOGGER)
    if not any(isinstance(f, _DropNotice) for f in notice.filters):
        notice.addFilter(_DropNotice())


class _DropNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_AUTH_NOTICE)
