"""A local Ray head with only the processes a one-machine run uses.

``ray.init()`` without an address starts, besides the GCS, the raylet and their agents, two Python
services that a fedray run on one machine never uses: the autoscaler ``monitor`` (about 80 MiB, it polls
the GCS for a cluster it could grow) and the ``log_monitor`` (about 77 MiB, it tails the workers' log
files to forward their lines to the driver). fedray forwards no actor output unless asked
(:func:`fedray.engine.runtime.actor_logs_wanted`; the run log gets the actors' lines from the session
logs at the end), so neither is needed. ``ray.init`` offers no switch for them; Ray's own
``ray.cluster_utils.Cluster`` starts a head the way this module does: a ``ray._private.node.Node`` built
from ``RayParams(no_monitor=True, include_log_monitor=...)``, then ``ray.init(address=...)``.

What ``ray.init`` does for a cluster it starts is kept: token authentication on by default (unless
``RAY_AUTH_MODE`` says otherwise), usage statistics off, CPUs as given and GPUs detected, the temporary
directory from ``RAY_TMPDIR``, a reaper (the kernel's parent-death signal on Linux) so that a driver
killed outright leaves no Ray process behind, and ``ray.shutdown()`` stopping the node: the head node
becomes the process's global node, exactly as after ``ray.init()``, so every caller's ``ray.shutdown()``
and Ray's own exit hook stop it.

These are private Ray interfaces. :func:`lean_api_problem` checks each one before anything starts; if
one is missing or has changed, :func:`start_local_ray` logs why and falls back to plain ``ray.init``
(same run, two more processes). ``tests/engine/test_local_ray.py`` pins the assumption, so a Ray
upgrade that breaks it fails a test instead of silently giving up the saving.
"""

from __future__ import annotations

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


def start_local_ray(num_cpus: int, system_config: dict[str, Any], log_monitor: bool,
                    **init_kwargs: Any) -> Any:
    """Start a local Ray head without the autoscaler monitor (and without the log monitor unless
    ``log_monitor``) and connect this process to it; return what ``ray.init`` returns.

    ``init_kwargs`` are ``ray.init``'s connection settings (``runtime_env``, ``log_to_driver``,
    ``logging_level``, ...). Falls back to ``ray.init(num_cpus=..., include_dashboard=False, ...)``,
    with a logged reason, when the private interfaces are not as expected."""
    problem = lean_api_problem()
    if problem is not None:
        logger.warning("starting Ray with ray.init (its autoscaler monitor and log monitor included): "
                       "the lean local head needs Ray's private node interface, and %s", problem)
        return ray.init(num_cpus=num_cpus, include_dashboard=False, _system_config=system_config,
                        **init_kwargs)
    node = start_lean_head(num_cpus, system_config, log_monitor)
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
    statistics set up first) and return its ``Node``."""
    from ray._common.usage import usage_lib
    from ray._private.authentication import authentication_token_setup as auth
    from ray._private.node import Node

    auth.enable_token_auth_by_default()
    auth.ensure_token_if_auth_enabled(system_config, create_token_if_missing=True)
    if not usage_lib.is_nightly_wheel():
        usage_lib.set_usage_stats_enabled_via_env_var(False)
    # shutdown_at_exit=False and a reaper, as ray.init's own head: ray.shutdown (called by every
    # caller, and by Ray at exit) stops it once it is the global node; the reaper covers a killed driver.
    return Node(head_params(num_cpus, system_config, log_monitor), head=True, shutdown_at_exit=False,
                spawn_reaper=True, ray_init_cluster=True)


def adopt_as_global_node(node: Any) -> None:
    """Make ``node`` this process's global Ray node, as ``ray.init`` does with a head it starts, so
    that ``ray.shutdown()`` stops its processes (for a node it merely connected to, it stops none)."""
    import ray._private.worker as worker

    worker._global_node = node
