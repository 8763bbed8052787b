"""A local Ray head with only the processes a one-machine run uses.

``ray.init()`` without an address starts, besides the GCS, the raylet and their agents, two Python
services that a fedray run on one machine never uses: the autoscaler ``monitor`` (about 80 MiB, it polls
the GCS for a cluster it could grow) and the ``log_monitor`` (about 77 MiB, it tails the workers' log
files to forward their lines to the driver). fedray forwards no actor output unless asked
(:func:`fedray.engine.runtime.actor_logs_wanted`; the run log gets the actors' lines from the session
logs at the end), so neither is needed. ``ray.init`` offers no switch for them; Ray's own
``ray.cluster_utils.Cluster`` starts a head the way this module does: a ``ray._private.node.Node`` built
from ``RayParams(no_monitor=True, include_log_monitor=...)``, then ``ray.init(address=...)``.

A head node also always starts a third Python service, the API server (``dashboard/dashboard.py``, about
90 MiB), even with ``include_dashboard=False``: it then loads only its usage-statistics module (off here),
not the state API (``ray.util.state``), job submission or the dashboard, and the head waits for it to
come up before its raylet starts. Nothing in a fedray run uses it (actor failures, logs, placement,
``ray.nodes()`` and Tune go through the GCS and the raylet), so the head is a ``Node`` whose
``start_api_server`` starts nothing while the dashboard is off (:func:`_node_class`). The raylet's two
agents (dashboard agent, runtime-env agent) stay: the raylet refuses to start without their commands,
waits for the ports they publish, and exits when either exits.

What ``ray.init`` does for a cluster it starts is kept: token authentication on by default (unless
``RAY_AUTH_MODE`` says otherwise), usage statistics off, CPUs as given and GPUs detected, the temporary
directory from ``RAY_TMPDIR``, a reaper (the kernel's parent-death signal on Linux) so that a driver
killed outright leaves no Ray process behind, and ``ray.shutdown()`` stopping the node: the head node
becomes the process's global node, exactly as after ``ray.init()``, so every caller's ``ray.shutdown()``
and Ray's own exit hook stop it.

These are private Ray interfaces. :func:`lean_api_problem` checks each one before anything starts; if
one is missing or has changed, :func:`start_local_ray` logs why and falls back to plain ``ray.init``
(same run, three more processes); if only the API server's hook has changed
(:func:`api_server_problem`), the lean head starts with its API server, as before, and says why.
``tests/engine/test_local_ray.py`` pins both assumptions, so a Ray upgrade that breaks one fails a test
instead of silently giving up the saving.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from typing import Any

import ray

logger = logging.getLogger(__name__)

#: (module, attribute, keyword arguments it must accept) for each private Ray interface used here.
_PRIVATE_API = (
    ("ray._private.parameter", "RayParams", ("num_cpus", "num_gpus", "include_dashboard", "no_monitor",
                                             "include_log_monitor", "_system_config", "temp_dir")),
    ("ray._private.node", "Node", ("ray_params", "head", "shutdown_at_exit", "spawn_reaper",
                                   "ray_init_cluster")),
    ("ray._private.authentication.authentication_token_setup", "enable_token_auth_by_default", ()),
    ("ray._private.authentication.authentication_token_setup", "ensure_token_if_auth_enabled",
     ("system_config", "create_token_if_missing")),
    ("ray._common.usage.usage_lib", "set_usage_stats_enabled_via_env_var", ()),
    ("ray._common.usage.usage_lib", "is_nightly_wheel", ()),
)


def lean_api_problem() -> str | None:
    """None when the installed Ray has every private interface this module uses, as it is used;
    otherwise what is missing (the reason :func:`start_local_ray` falls back to ``ray.init``)."""
    for module_name, name, keywords in _PRIVATE_API:
        try:
            target = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            return f"{module_name}.{name} is gone (Ray {ray.__version__})"
        try:
            accepted = inspect.signature(target).parameters
        except (TypeError, ValueError):
            return f"{module_name}.{name} has no readable signature (Ray {ray.__version__})"
        missing = [k for k in keywords if k not in accepted]
        if missing:
            return f"{module_name}.{name} takes no {', '.join(missing)} (Ray {ray.__version__})"
    if not hasattr(importlib.import_module("ray._private.worker"), "_global_node"):
        return f"ray._private.worker._global_node is gone (Ray {ray.__version__})"
    return None


def api_server_problem() -> str | None:
    """None when the head's API server can be left out as :func:`_node_class` does: ``Node`` starts it
    from ``start_head_processes`` by calling its own ``start_api_server(include_dashboard=...,
    raise_on_failure=...)``; otherwise what has changed (the head then starts it, as Ray does)."""
    try:
        from ray._private.node import Node

        start = Node.start_head_processes
        hook = inspect.signature(Node.start_api_server).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return f"ray._private.node.Node has no start_head_processes/start_api_server (Ray {ray.__version__})"
    missing = [k for k in ("include_dashboard", "raise_on_failure") if k not in hook]
    if missing:
        return f"Node.start_api_server takes no {', '.join(missing)} (Ray {ray.__version__})"
    try:
        source = inspect.getsource(start)
    except (OSError, TypeError):
        return f"Node.start_head_processes has no readable source (Ray {ray.__version__})"
    if "self.start_api_server(" not in source:
        return f"Node.start_head_processes no longer calls self.start_api_server (Ray {ray.__version__})"
    return None


def start_local_ray(num_cpus: int, system_config: dict[str, Any], log_monitor: bool,
                    **init_kwargs: Any) -> Any:
    """Start a local Ray head without the autoscaler monitor and the API server (and without the log
    monitor unless ``log_monitor``) and connect this process to it; return what ``ray.init`` returns.

    ``init_kwargs`` are ``ray.init``'s connection settings (``runtime_env``, ``log_to_driver``,
    ``logging_level``, ...). Falls back to ``ray.init(num_cpus=..., include_dashboard=False, ...)``,
    with a logged reason, when the private interfaces are not as expected."""
    problem = lean_api_problem()
    if problem is not None:
        logger.warning("starting Ray with ray.init (its autoscaler monitor, log monitor and API server "
                       "included): the lean local head needs Ray's private node interface, and %s",
                       problem)
        return ray.init(num_cpus=num_cpus, include_dashboard=False, _system_config=system_config,
                        **init_kwargs)
    return connect_to_head(start_lean_head(num_cpus, system_config, log_monitor), **init_kwargs)


def connect_to_head(node: Any, **init_kwargs: Any) -> Any:
    """Connect this process to the lean head ``node`` and make it the global node (as ``ray.init`` does
    with a head it starts); stop the head if the connection fails. Returns what ``ray.init`` returns."""
    try:
        context = ray.init(address=node.address, **init_kwargs)
    except BaseException:
        node.kill_all_processes(check_alive=False, allow_graceful=True)
        raise
    adopt_as_global_node(node)
    return context


def head_params(num_cpus: int, system_config: dict[str, Any], log_monitor: bool) -> Any:
    """The ``RayParams`` of the lean head: ``ray.init``'s for a new cluster, less the two monitors
    (the log monitor kept when actor output is forwarded to the driver), without a dashboard."""
    from ray._private.parameter import RayParams

    return RayParams(num_cpus=num_cpus, num_gpus=None, include_dashboard=False, no_monitor=True,
                     include_log_monitor=log_monitor, _system_config=system_config)


def start_lean_head(num_cpus: int, system_config: dict[str, Any], log_monitor: bool) -> Any:
    """Start the head's processes as ``ray.init`` would for a new cluster (authentication and usage
    statistics set up first), less the API server (:func:`_node_class`, unless
    :func:`api_server_problem` says why it cannot be left out), and return its ``Node``."""
    from ray._common.usage import usage_lib
    from ray._private.authentication import authentication_token_setup as auth

    auth.enable_token_auth_by_default()
    auth.ensure_token_if_auth_enabled(system_config, create_token_if_missing=True)
    if not usage_lib.is_nightly_wheel():
        usage_lib.set_usage_stats_enabled_via_env_var(False)
    # shutdown_at_exit=False and a reaper, as ray.init's own head: ray.shutdown (called by every
    # caller, and by Ray at exit) stops it once it is the global node; the reaper covers a killed driver.
    return head_node_class()(head_params(num_cpus, system_config, log_monitor), head=True,
                             shutdown_at_exit=False, spawn_reaper=True, ray_init_cluster=True)


def head_node_class() -> type:
    """The ``Node`` class the lean head is built from: one without the idle API server
    (:func:`_node_class`), or Ray's own, with a logged reason, when :func:`api_server_problem` finds
    that the hook it overrides has changed."""
    from ray._private.node import Node

    problem = api_server_problem()
    if problem is None:
        return _node_class()
    logger.warning("starting Ray's API server (dashboard.py, unused by a run) with the lean head: "
                   "leaving it out needs Ray's private node interface, and %s", problem)
    return Node


@functools.cache
def _node_class() -> type:
    """``ray._private.node.Node`` whose head starts no API server when the dashboard is turned off
    (``include_dashboard=False``, as :func:`head_params` does); everything else, the raylet's agents
    included, starts as in Ray."""
    from ray._private.node import Node

    class NodeWithoutIdleApiServer(Node):
        """A Ray node that skips the API server a head would start only for usage statistics."""

        def start_api_server(self, *, include_dashboard: bool | None, raise_on_failure: bool) -> None:
            if include_dashboard is not False:  # asked for (True) or Ray's default (None)
                super().start_api_server(include_dashboard=include_dashboard,
                                         raise_on_failure=raise_on_failure)

    return NodeWithoutIdleApiServer


def adopt_as_global_node(node: Any) -> None:
    """Make ``node`` this process's global Ray node, as ``ray.init`` does with a head it starts, so
    that ``ray.shutdown()`` stops its processes (for a node it merely connected to, it stops none)."""
    import ray._private.worker as worker

    worker._global_node = node
