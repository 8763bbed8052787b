"""Starting (or joining) Ray with the settings fedray needs, and nothing more.

No dashboard; the cluster's own logging at WARNING, less the notice Ray prints on every start of a local
cluster that token authentication is on (its default, which stays); and the actors' output (worker
stdout/stderr, e.g. library deprecation warnings printed once per actor) stays in Ray's session logs
instead of being forwarded to the driver's terminal. Both unless asked for: ``fedray --debug`` or
``FEDRAY_ACTOR_LOGS=1``.
A client's failure still reaches the driver, with its traceback, through the failed call itself.
"""

from __future__ import annotations

import logging
import os
import re
import socket

import ray

from fedray.config.schema import ResourcesConfig
from fedray.errors import SchedulingError

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
        require_reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            raise SchedulingError(f"cannot connect to the Ray cluster at {address!r}: {exc}; start it "
                                  "(`ray start --head`) or fix resources.ray_address") from None
    else:
        if not actor_logs_wanted():
            _quiet_auth_notice()
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    return True


#: Seconds to wait for a cluster address to accept a connection before the run fails (Ray itself
#: would retry an unreachable address for minutes).
CONNECT_TIMEOUT_S = 30.0
_HOST_PORT = re.compile(r"^(?:ray://)?\[?(?P<host>[^\[\]]+?)\]?:(?P<port>\d+)$")


def require_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout_s`` with a :class:`SchedulingError` if ``host:port`` (or ``ray://host:port``)
    accepts no TCP connection; other forms (``auto``) are left to Ray."""
    match = _HOST_PORT.match(address.strip())
    if not match:
        return
    host, port = match.group("host"), int(match.group("port"))
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise SchedulingError(f"the Ray cluster at {address!r} cannot be reached ({reason}, waited up to "
                              f"{timeout_s:g} s); start it (`ray start --head --port {port}`) or fix "
                              "resources.ray_address (null starts Ray locally)") from None


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
