"""Optional experiment loggers of a sweep, as Ray Tune logger callbacks chosen by name.

TensorBoard is always on: Tune writes its events per trial and every trial's fedray run writes
``run/tensorboard/``. A sweep file adds others under ``loggers``, each by registered name with its typed
options, e.g. ``loggers: {mlflow: {}}`` (an MLflow file store in ``<sweep>/mlruns``). A logger runs on the
machine of ``fedray tune``, so a local tracking store lands there.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

from fedray.config.schema import spec
from fedray.errors import FedRayError
from fedray.registry import Registry

#: name → factory(params, experiment_path) returning a Ray Tune logger callback
SWEEP_LOGGERS: Registry[Callable[[Any, str], Any]] = Registry("sweep logger")


@dataclasses.dataclass(frozen=True)
class MlflowParams:
    """Where MLflow records one run per trial (its parameters, each reported round's metrics)."""

    tracking_uri: Optional[str] = spec(
        None, help="MLflow tracking URI (None: a local file store, <sweep directory>/mlruns)")
    experiment_name: Optional[str] = spec(None, help="MLflow experiment (None: the sweep's name)")


@SWEEP_LOGGERS.register("mlflow", params=MlflowParams)
def mlflow_logger(params: MlflowParams, experiment_path: str) -> Any:
    """Ray Tune's MLflow logger callback; needs the ``mlflow`` extra (``pip install fedray[mlflow]``)."""
    try:
        import mlflow  # noqa: F401
        from ray.air.integrations.mlflow import MLflowLoggerCallback
    except ImportError as err:
        raise FedRayError("loggers.mlflow needs the mlflow package, which is not installed: "
                          "`pip install 'fedray[mlflow]'` (or mlflow-skinny), or drop loggers.mlflow"
                          ) from err
    uri = params.tracking_uri
    if uri is None:
        if "://" in experiment_path:
            raise FedRayError("loggers.mlflow: the sweep's storage is remote, so give "
                              "loggers.mlflow.tracking_uri (a tracking server or a local file:// path)")
        uri = (Path(experiment_path) / "mlruns").resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        # MLflow keeps its file store in maintenance mode and refuses it unless told that it is wanted.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    name = params.experiment_name or experiment_path.rstrip("/").rpartition("/")[2]
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=name)


def logger_problems(loggers: Mapping[str, Any]) -> list[str]:
    """Every problem with a sweep's ``loggers`` section (unknown names, bad options), with its path."""
    problems: list[str] = []
    for name, options in loggers.items():
        if options is not None and not isinstance(options, Mapping):
            problems.append(f"loggers.{name}: got {options!r}, expected a mapping of options (or {{}})")
            continue
        _, found = SWEEP_LOGGERS.parse(name, options, f"loggers.{name}")
        problems += [p.replace(f"loggers.{name}.name: ", "loggers: ") for p in found]
    return problems


def logger_callbacks(loggers: Mapping[str, Any], experiment_path: str) -> list[Any]:
    """The Tune callbacks for a validated ``loggers`` section."""
    callbacks = []
    for name, options in loggers.items():
        params, _ = SWEEP_LOGGERS.parse(name, options, f"loggers.{name}")
        callbacks.append(SWEEP_LOGGERS.get(name)(params, experiment_path))
    return callbacks
