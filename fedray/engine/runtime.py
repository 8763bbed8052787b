"""Starting (or joining) Ray with the settings fedray needs, and nothing more.

No dashboard. A local cluster that this process starts runs no autoscaler monitor, no API server and
(unless the actors' output is forwarded) no log monitor (:mod:`fedray.engine.local_ray`), and prestarts no
idle Python workers (:data:`LEAN_SYSTEM_CONFIG`): Ray would start one per CPU when it starts and more
when the driver connects, and in a run none of them hosted an actor (each actor got a worker of its own,
measured with fedray/bench/proctree.py), so they only took memory (about 80 MiB each) and start-up CPU.
The cluster's own logging at WARNING, less the notice Ray prints on every start of a local
cluster that token authentication is on (its default, which stays); and the actors' output (worker
stdout/stderr, e.g. library deprecation warnings printed once per actor) stays in Ray's session logs
instead of being forwarded to the driver's terminal (the engine copies this run's into ``run.log`` at
its end: :func:`actor_output`). Both unless asked for: ``fedray --debug`` or ``FEDRAY_ACTOR_LOGS=1``,
which forward the actors' lines, without colour codes when the output is not a terminal.
A client's failure still reaches the driver, with its traceback, through the failed call itself.
A run starts its local head on a thread (:func:`begin_local_ray`) and builds its data meanwhile.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import ray

from fedray.config.schema import ResourcesConfig
from fedray.engine.local_ray import connect_to_head, lean_api_problem, start_lean_head, start_local_ray
from fedray.errors import SchedulingError

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class RayStart:
    """What :func:`ensure_ray` did: true when it started (or joined) Ray, so the caller shuts it down;
    ``session_dir`` is this machine's Ray session directory then (its ``logs/`` hold the actors' output)."""

    started: bool
    session_dir: str | None = None

    def __bool__(self) -> bool:
        return self.started


class EarlyHead:
    """A local Ray head starting on a thread (:func:`begin_local_ray`): the driver builds the data while
    Ray's processes start (about 1.8 s, mostly waiting for them, on a 2-core machine) instead of while
    the actors load, when it would take CPU from them. :func:`ensure_ray` connects to it; :meth:`close`,
    once the run has shut Ray down, ends the thread (and stops the head if the run never connected).

    The thread outlives the start: Ray binds each process it spawns to the spawning *thread* (Linux's
    parent-death signal), so the GCS and the raylet would be killed the moment a finished thread exits.
    """

    def __init__(self, num_cpus: int, log_monitor: bool) -> None:
        self._node: Any = None
        self._error: BaseException | None = None
        self._taken = False
        self._started, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._start, args=(num_cpus, log_monitor),
                                        name="fedray-ray-head", daemon=True)
        self._thread.start()

    def _start(self, num_cpus: int, log_monitor: bool) -> None:
        try:
            self._node = start_lean_head(num_cpus, dict(LEAN_SYSTEM_CONFIG), log_monitor)
        except BaseException as exc:  # re-raised in the driver's thread by take()
            self._error = exc
        self._started.set()
        self._release.wait()  # the head's processes live as long as this thread (class docstring)

    def take(self) -> Any:
        """The started head's ``Node`` (after waiting for it); what starting it raised, if it failed."""
        self._started.wait()
        if self._error is not None:
            raise self._error
        self._taken = True
        return self._node

    def close(self) -> None:
        """End the thread, after stopping the head's processes unless :meth:`take` handed it on (whoever
        took it shuts it down first: ``ray.shutdown()``)."""
        self._started.wait()
        if not self._taken and self._node is not None:
            self._node.kill_all_processes(check_alive=False, allow_graceful=True)
        self._release.set()
        self._thread.join()


def begin_local_ray(resources: ResourcesConfig) -> EarlyHead | None:
    """Start the local head :func:`ensure_ray` would start, without waiting for it; None when the run
    joins a cluster, Ray is already up, or the lean head's interface is missing (``ray.init`` then)."""
    if ray.is_initialized() or resources.ray_address or os.environ.get("RAY_ADDRESS") or \
            lean_api_problem() is not None:
        return None
    _prepare_driver(local=True)
    return EarlyHead(os.cpu_count() or 1, log_monitor=actor_logs_wanted())


def _prepare_driver(local: bool) -> dict[str, Any]:
    """The worker environment (the head's processes pass it on), quiet notices; ``ray.init``'s kwargs."""
    os.environ.update(WORKER_ENV)
    kwargs: dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=actor_logs_wanted(),
                                  runtime_env={"env_vars": WORKER_ENV})
    if kwargs["log_to_driver"]:
        plain_prefixes_when_redirected(sys.stdout)
    elif local:
        _quiet_auth_notice()
    return kwargs


def ensure_ray(resources: ResourcesConfig, early: EarlyHead | None = None) -> RayStart:
    """Connect to ``resources.ray_address``, to the ``early`` head, or start a local Ray; true when
    this call started (or connected to the early head) it."""
    if ray.is_initialized():
        return RayStart(False)
    address = resources.ray_address or os.environ.get("RAY_ADDRESS")  # set inside a Ray job
    kwargs = _prepare_driver(local=not address)
    if early is not None:
        context = connect_to_head(early.take(), **kwargs)
    elif address:
        require_reachable(address)
        try:
            context = ray.init(address=address, include_dashboard=False, **kwargs)
        except ConnectionError as exc:
            raise SchedulingError(f"cannot connect to the Ray cluster at {address!r}: {exc}; start it "
                                  "(`ray start --head`) or fix resources.ray_address") from None
    else:
        system_config = dict(LEAN_SYSTEM_CONFIG)  # a copy: Ray adds its own keys to the dict it gets
        # no dashboard or API server, no autoscaler monitor, a log monitor only when lines are forwarded
        context = start_local_ray(os.cpu_count() or 1, system_config, log_monitor=kwargs["log_to_driver"],
                                  **kwargs)
    session_dir = context.address_info.get("session_dir")
    if not kwargs["log_to_driver"]:
        logger.info("the actors' output (library warnings, prints) goes to Ray's session logs, %s/logs, "
                    "not to the terminal (fedray --debug or %s=1 shows it there); this run's is copied "
                    "here at its end", session_dir, ACTOR_LOGS_ENV)
    return RayStart(True, session_dir)


def plain_prefixes_when_redirected(stream: TextIO) -> None:
    """Forwarded actor lines carry a coloured ``(ClientActor pid=...)`` prefix: ANSI codes in a log
    file. Ray's documented ``RAY_COLOR_PREFIX=0`` turns the colour off; set it (unless the user did)
    when ``stream`` is not a terminal."""
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if not terminal:
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")


#: Lines Ray writes at the top of every worker's log file, not the worker's own output.
_LOG_MARKERS = (":job_id:", ":actor_name:", ":task_name:")


def actor_output(session_dir: str | None, job_id: str) -> list[str]:
    """The stderr of job ``job_id``'s workers on this machine (read from ``session_dir/logs``), each
    distinct line once, with how many workers wrote it: what the terminal was spared, for the run log."""
    if not session_dir:
        return []
    counts: dict[str, int] = {}
    for path in sorted(Path(session_dir, "logs").glob(f"worker-*-{job_id}-*.err")):
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:  # a worker's file may be rotated away; its lines are simply missing
            continue
        own = (text.rstrip() for text in lines if text.strip() and not text.startswith(_LOG_MARKERS))
        for line in dict.fromkeys(own):
            counts[line] = counts.get(line, 0) + 1
    return [line + (f"  [×{n} workers]" if n > 1 else "") for line, n in counts.items()]


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
