"""One Ray Tune trial is one fedray simulation; and the :class:`~ray.tune.Tuner` that runs a sweep.

**Reporting.** A trial reports after every evaluated round from round 1: ``server_round`` (ASHA's
``time_attr``), ``train_loss``, the validation metrics as ``val_<metric>`` and the test metrics as
``test_<metric>`` (a ``/`` in a metric name becomes ``_``: ``test_image_only_accuracy``), and
``mib_sent`` (adapter traffic of the round), through a round observer (:class:`TuneReporter`).
Optimise a ``val_`` metric: picking hyperparameters on the test set would leak it. The last round is
reported after the run has written its summary and adapters, because a scheduler may end a trial at its
last report (ASHA does at ``max_t``). Like ``fedray run``, a trial also writes TensorBoard events.

**Placement.** Each trial reserves a placement group: bundle 0 for the trial's driver (its round loop
and data preparation; ``placement.driver_cpus``, none when 0), then one bundle per client actor
(``resources.cpus_per_actor`` / ``gpus_per_actor``). Tune starts the trial's function actor in bundle 0
with ``placement_group_capture_child_tasks=True`` (``ray.air.execution.resources.placement_group``), so
the client actors that :class:`~fedray.engine.pool.ActorPool` creates with plain ``num_cpus`` /
``num_gpus`` options inherit the trial's group and land in its client bundles: no engine change is
needed. The aggregator keeps its hard ``NodeAffinitySchedulingStrategy`` to the node of the trial's
driver; it asks for no resources, so it needs no bundle. When a trial ends (or ASHA stops it) Tune
kills its actor and removes its group; the client actors and the aggregator are owned by that actor and
go with it.

**Run directories.** A trial's fedray run directory is ``<trial dir>/run`` when the sweep's storage is
local, else ``<trial working dir>/run`` synced to the storage as a trial artifact and, after each new
engine checkpoint, reported as a ``tune.Checkpoint`` (:mod:`fedray.tune.checkpoints`). When a restored
sweep restarts a trial whose run directory holds an engine checkpoint (or, remote, whose latest Tune
checkpoint does), the run continues from it. Only Ray Tune's public API is used (``tune.report``,
``tune.get_context``, ``tune.get_checkpoint``, ``tune.Checkpoint``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from fedray.engine.checkpoint import CHECKPOINT_FILE
from fedray.engine.history import RoundRecord
from fedray.engine.observers import RoundObserver, RunStart
from fedray.engine.summary import RunSummary
from fedray.errors import FedRayError
from fedray.report.tensorboard import TensorBoardLogger
from fedray.tune.checkpoints import restore_run_dir, trial_report
from fedray.tune.space import TuneSpace

TRAINABLE_NAME = "fedray_trial"


def round_metrics(record: RoundRecord) -> dict[str, float]:
    """The flat metrics one evaluated round reports to Tune."""
    out: dict[str, float] = {"server_round": record.server_round}
    if record.train_loss is not None:
        out["train_loss"] = record.train_loss
    for prefix, metrics in (("val_", record.validation), ("test_", record.eval)):
        out.update({prefix + key.replace("/", "_"): float(value) for key, value in metrics.items()
                    if isinstance(value, (int, float)) and not isinstance(value, bool)})
    out["mib_sent"] = record.bytes_sent / 2**20
    return out


def trial_run_dir(experiment_path: str) -> Path:
    """The fedray run directory of the current Tune trial (see the module docstring)."""
    from ray import tune

    context = tune.get_context()
    if "://" in experiment_path:  # the trial's working directory, synced to the storage as an artifact
        return Path(context.get_trial_dir()) / "run"
    return Path(experiment_path) / f"trial_{context.get_trial_id()}" / "run"


def _prepare_run_dir(run_dir: Path) -> bool:
    """True when ``run_dir`` holds an engine checkpoint to continue; otherwise start it afresh."""
    if (run_dir / CHECKPOINT_FILE).exists():
        return True
    if run_dir.exists():  # a restarted trial: its history would otherwise be appended to
        shutil.rmtree(run_dir)
    return False


class TuneReporter(RoundObserver):
    """Reports each evaluated round from round 1 to Tune as :func:`round_metrics`.

    The last round is held back until the run has finished (written its summary and adapters), since a
    scheduler may end the trial at its last report.
    """

    def __init__(self, metric: str, report: Callable[[dict[str, float]], None]) -> None:
        self.metric, self.report = metric, report
        self.last_round = 0
        self.final: dict[str, float] = {}

    def on_start(self, start: RunStart) -> None:
        self.last_round = start.last_round

    def on_round(self, record: RoundRecord) -> None:
        if not record.eval or record.server_round < 1:
            return
        metrics = round_metrics(record)
        if self.metric not in metrics:
            raise FedRayError(
                f"the sweep optimises {self.metric!r} but round {record.server_round} reported only "
                f"{sorted(metrics)}; for a val_ metric give the scenario a validation split "
                "(data.validation_fraction > 0), or optimise a test_ metric")
        if record.server_round < self.last_round:
            self.report(metrics)
        else:
            self.final = metrics

    def on_finish(self, summary: RunSummary, completed: bool) -> None:
        if completed and self.final:
            self.report(self.final)


def make_trainable(space: TuneSpace, experiment_path: str) -> Callable[[dict[str, Any]], None]:
    """The Tune function trainable: build the trial's scenario, run it, report each evaluated round."""
    metric = space.config.metric

    def fedray_trial(config: dict[str, Any]) -> None:
        from ray import tune

        from fedray.engine.simulation import run

        scenario = space.trial_scenario(config)
        run_dir = trial_run_dir(experiment_path)
        remote = "://" in experiment_path
        if remote:  # the working directory is new: the engine checkpoint comes back from Tune's
            restore_run_dir(run_dir, tune.get_checkpoint())
        resume = _prepare_run_dir(run_dir)
        reporter = TuneReporter(metric, trial_report(remote, run_dir))
        run(scenario, run_dir, observers=[TensorBoardLogger(), reporter], resume=resume)

    fedray_trial.__name__ = fedray_trial.__qualname__ = TRAINABLE_NAME
    return fedray_trial


def trial_bundles(space: TuneSpace, config: dict[str, Any]) -> list[dict[str, float]]:
    """The trial's placement-group bundles: its driver, then one per client actor of every group."""
    try:
        res = space.trial_scenario(config).resources
    except FedRayError:  # the trial itself will fail with the full message; reserve its base's pool
        from fedray.config.load import scenario_from_dict

        res = scenario_from_dict(space.bases[config["scenario"]]).resources
    if res.actors is None:
        raise FedRayError(
            f"trial of scenario {config['scenario']!r}: resources.actors is null (size the pool from the "
            "cluster), but a trial reserves its actors before it starts and the cluster is shared with "
            "the other trials; set resources.actors in the sweep's overrides (e.g. resources.actors: 2)")
    actor = {"CPU": res.cpus_per_actor, **({"GPU": res.gpus_per_actor} if res.gpus_per_actor else {})}
    count = res.actors * res.actors_per_client
    return [{"CPU": space.config.placement.driver_cpus}] + [dict(actor) for _ in range(count)]


def _trial_resources(space: TuneSpace) -> Callable[[dict[str, Any]], Any]:
    from ray.tune import PlacementGroupFactory

    def resources(config: dict[str, Any]) -> PlacementGroupFactory:
        return PlacementGroupFactory(trial_bundles(space, config), strategy=space.config.placement.strategy)

    return resources


def trial_dirname(trial: Any) -> str:
    """Short trial directory names (Tune's default repeats every parameter); :func:`trial_run_dir`
    finds a trial's directory by this name."""
    return f"trial_{trial.trial_id}"


def _scheduler(space: TuneSpace) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    cfg = space.config.scheduler
    if cfg.name == "none":
        return FIFOScheduler()
    max_t = cfg.max_t or space.max_rounds()
    return ASHAScheduler(time_attr="server_round", max_t=max_t, grace_period=min(cfg.grace_period, max_t),
                         reduction_factor=cfg.reduction_factor, brackets=cfg.brackets)


def _search(space: TuneSpace) -> Any:
    """The search algorithm, limited to ``max_concurrent_trials`` running trials.

    The limit is set here rather than in ``TuneConfig``: given a search algorithm, Tune applies
    ``TuneConfig.max_concurrent_trials`` only by wrapping a ``Searcher`` in a ``ConcurrencyLimiter``,
    and ignores it (with a warning) for a ``BasicVariantGenerator``, which random and grid search are.
    """
    cfg, limit = space.config.search, space.config.max_concurrent_trials
    if cfg.name == "optuna":
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(seed=cfg.seed)
        return ConcurrencyLimiter(searcher, max_concurrent=limit) if limit else searcher
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=cfg.seed, max_concurrent=limit or 0)


def tune_config(space: TuneSpace) -> Any:
    """Tune's ``TuneConfig`` for ``space``: metric, scheduler, search (with the concurrency limit)."""
    from ray import tune

    cfg = space.config
    return tune.TuneConfig(metric=cfg.metric, mode=cfg.mode, scheduler=_scheduler(space),
                           search_alg=_search(space), num_samples=cfg.num_samples,
                           reuse_actors=False, trial_dirname_creator=trial_dirname)


def trainable_for(space: TuneSpace, experiment_path: str) -> Any:
    """The trainable with its per-trial placement group attached (the same for a fresh or restored sweep)."""
    from ray import tune

    for label in space.bases:  # a pool size that Tune could only refuse trial by trial: say so now
        trial_bundles(space, {"scenario": label, **{d.path: d.values[0] for d in space.dimensions}})

    return tune.with_resources(make_trainable(space, experiment_path), _trial_resources(space))


def split_experiment_path(path: str) -> tuple[str, str]:
    """``.../storage/name`` → (storage, name); works for local paths and ``s3://``-style URIs."""
    head, _, name = path.rstrip("/").rpartition("/")
    return head, name


def sweep_callbacks(space: TuneSpace, experiment_path: str) -> list[Any]:
    """Tune callbacks of every sweep: the state signer (see :mod:`fedray.tune.trust`) and the optional
    loggers of the sweep file (TensorBoard is Tune's default and stays on)."""
    from fedray.tune.loggers import logger_callbacks
    from fedray.tune.trust import StateSigner

    return [StateSigner(experiment_path), *logger_callbacks(space.config.loggers, experiment_path)]


def build_tuner(space: TuneSpace, experiment_path: str) -> Any:
    """A fresh Tuner for ``space`` writing to ``experiment_path`` (``<storage>/<name>``)."""
    from ray import tune

    storage, name = split_experiment_path(experiment_path)
    local = "://" not in storage
    return tune.Tuner(
        trainable_for(space, experiment_path),
        param_space=space.param_space(),
        tune_config=tune_config(space),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, verbose=1,
            failure_config=tune.FailureConfig(max_failures=0),
            sync_config=tune.SyncConfig(sync_artifacts=not local),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # remote storage only (checkpoints.py)
            callbacks=sweep_callbacks(space, experiment_path)),
    )


def restore_tuner(space: TuneSpace, experiment_path: str) -> Any:
    """The interrupted sweep at ``experiment_path``: finished trials are kept, unfinished and errored
    ones run again (continuing from their engine checkpoint where there is one).

    Tune's saved state holds pickles, so it is restored only after :func:`~fedray.tune.trust.verify_state`
    has checked that this user's fedray wrote every file of it.
    """
    from ray import tune

    from fedray.tune.trust import drop_trial_errors, verify_state

    if not tune.Tuner.can_restore(experiment_path):
        raise FedRayError(f"no sweep to resume at {experiment_path}: it has no Tune experiment state. "
                          "Start it without --resume (check --storage and the sweep's name)")
    verify_state(experiment_path)
    drop_trial_errors(experiment_path)
    return tune.Tuner.restore(experiment_path, trainable=trainable_for(space, experiment_path),
                              resume_errored=True)
