"""``fedray tune SPACE [key=value ...] [--storage PATH_OR_URI] [--resume]``: a hyperparameter sweep.

Runs a Ray Tune sweep in which every trial is one fedray simulation (see ``fedray/tune/``). The sweep
lives in ``<storage>/<name>`` (``--storage`` a local directory, default ``runs/tune``, or a URI such as
``s3://bucket/sweeps``). At the end, in that directory (or ``--out`` when the storage is remote):

- ``results.csv`` / ``results.md``: one row per trial: its varied parameters, status (completed,
  stopped early by the scheduler, error), rounds completed, the best and last value of the metric, and
  the test value of ``eval.select_metric`` at the best round;
- ``best_scenario.yaml``: the best trial's full scenario, runnable with ``fedray run``;
- ``sweep.json``: the resolved sweep, checked on ``--resume`` so a changed sweep file is not mixed in.

``key=value`` overrides apply to the sweep file (``num_samples=4``, ``scheduler.grace_period=2``,
``overrides.federation.rounds=3``). Ctrl+C stops the sweep after saving its state; ``--resume``
continues it: finished trials are kept, unfinished and errored ones run again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from fedray.errors import FedRayError

HELP = "hyperparameter sweep: Ray Tune trials that are fedray simulations (ASHA, grid, random)"
DEFAULT_STORAGE = "runs/tune"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="sweep file, e.g. tune_spaces/mini-asha.yaml")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides of the sweep file")
    parser.add_argument("--storage", default=DEFAULT_STORAGE,
                        help=f"local directory or URI (s3://, gs://) of sweeps (default {DEFAULT_STORAGE})")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted sweep of this name")
    parser.add_argument("--out", default=None,
                        help="where the tables go (default: the sweep directory when it is local)")


def main(args: argparse.Namespace) -> int:
    from fedray.tune.space import load_space
    from fedray.tune.trainable import build_tuner, restore_tuner

    space = load_space(args.space, args.overrides)
    storage = args.storage if "://" in args.storage else str(Path(args.storage).expanduser().resolve())
    experiment = f"{storage.rstrip('/')}/{space.name}"
    out = Path(args.out) if args.out else (Path(experiment) if "://" not in storage else
                                            Path(DEFAULT_STORAGE) / space.name)
    # Trials keep the launch directory as their working directory, so relative scenario paths work.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    started = _init_ray(space)
    try:
        from ray import tune

        if not args.resume and tune.Tuner.can_restore(experiment):
            raise FedRayError(f"a sweep named {space.name!r} already exists at {experiment}: continue it "
                              f"with --resume, or start another with name=<new name>")
        _check_snapshot(space, out, args.resume)
        tuner = restore_tuner(space, experiment) if args.resume else build_tuner(space, experiment)
        print(f"fedray tune: {space.name}: {space.expected_trials()} trials of {list(space.bases)}, "
              f"metric {space.config.metric} ({space.config.mode}), scheduler "
              f"{space.config.scheduler.name}, search {space.config.search.name} → {experiment}", flush=True)
        start = time.perf_counter()
        results = tuner.fit()
        wall = time.perf_counter() - start
        # Statuses as saved in the experiment state: after Ctrl+C, Tune saves the state and only then
        # stops the running trials, so the saved state (not `results`) tells unfinished trials apart.
        rows = sweep_rows(space, results, _saved_statuses(experiment))
    finally:
        if started:
            import ray

            ray.shutdown()
    return _finish(space, rows, out, wall, args)


def _init_ray(space: Any) -> bool:
    """Join ``resources.ray_address`` or ``$RAY_ADDRESS`` (set inside a Ray job), else start Ray here."""
    from dataclasses import replace

    from fedray.config.load import scenario_from_dict
    from fedray.engine.runtime import ensure_ray

    resources = scenario_from_dict(next(iter(space.bases.values()))).resources
    address = resources.ray_address or os.environ.get("RAY_ADDRESS")
    return ensure_ray(replace(resources, ray_address=address))


def _saved_statuses(experiment: str) -> dict[str, str]:
    """Trial id → status from the experiment state Tune saved, read (it holds pickles) only once its
    signature checks out (fedray.tune.trust); otherwise none, and the rows fall back on the results."""
    from ray import tune

    from fedray.tune.trust import UntrustedStateError, verify_state

    try:
        verify_state(experiment)
    except UntrustedStateError as err:
        print(f"fedray tune: not reading the saved trial statuses: {err}", file=sys.stderr)
        return {}
    return {t.trial_id: t.status for t in tune.ExperimentAnalysis(experiment).trials}


def _check_snapshot(space: Any, out: Path, resume: bool) -> None:
    from fedray.config.load import scenario_to_dict

    snapshot = {"config": scenario_to_dict(space.config), "bases": space.bases}
    path = out / "sweep.json"
    text = json.dumps(snapshot, indent=1, sort_keys=True, default=str)
    if resume and path.exists() and path.read_text(encoding="utf-8") != text:
        raise FedRayError(f"the sweep differs from the one started in {out} ({path}); resume it with "
                          "the same sweep file and overrides, or start a new one with name=<new name>")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def sweep_rows(space: Any, results: Any, statuses: dict[str, str]) -> list[dict[str, Any]]:
    """One row per trial of a finished (or interrupted) Tune ResultGrid; ``statuses`` maps trial ids
    to their Tune status."""
    metric, mode = space.config.metric, space.config.mode
    # A trial stopped before it reported anything (Ctrl+C as it was being started) has no config in its
    # result: its row says so (unfinished, no values) instead of failing the whole table.
    configs = [dict(r.config) if r.config is not None else None for r in results]
    varied = [k for k in space.param_space() if len({json.dumps(c.get(k), default=str)
                                                     for c in configs if c is not None}) > 1]
    rows = []
    for result, config in zip(results, configs):
        trial_id = Path(result.path).name.removeprefix("trial_")  # see fedray.tune.trainable.trial_dirname
        if config is None:
            rows.append({"trial": trial_id, **{k: None for k in varied},
                         "status": _status(statuses.get(trial_id, "PENDING"), 0, 1), "rounds": 0,
                         f"best_{metric}": None, "best_round": None, f"last_{metric}": None, "config": {}})
            continue
        rounds = space.trial_scenario(config).federation.rounds
        df = result.metrics_dataframe
        records = [] if df is None or metric not in getattr(df, "columns", ()) else df.to_dict("records")
        records = [r for r in records if _finite(r.get(metric))]
        best = (max if mode == "max" else min)(records, key=lambda r: r[metric]) if records else {}
        last = records[-1] if records else {}
        done = int(last.get("server_round", 0))
        status = statuses.get(trial_id, "ERROR" if result.error else "TERMINATED")
        row = {"trial": trial_id, **{k: config.get(k) for k in varied},
               "status": _status(status, done, rounds), "rounds": done,
               f"best_{metric}": best.get(metric), "best_round": best.get("server_round"),
               f"last_{metric}": last.get(metric)}
        select = space.trial_scenario(config).eval.select_metric
        for split in ("val_", "test_"):
            if split + select != metric:
                row[f"{split}{select}@best"] = best.get(split + select)
        row["config"] = config
        rows.append(row)
    keys = next((list(r) for r in rows if r["config"]), list(rows[0]) if rows else [])
    return [{k: r.get(k) for k in keys} for r in rows]  # every row with the full rows' columns


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _status(tune_status: str, done: int, rounds: int) -> str:
    if tune_status == "ERROR":
        return "error"
    if tune_status != "TERMINATED":
        return "unfinished"
    return "completed" if done >= rounds else "stopped early"


def _finish(space: Any, rows: list[dict[str, Any]], out: Path, wall: float, args: argparse.Namespace) -> int:
    from fedray.config.load import dump_scenario
    from fedray.report.tables import write_table

    metric, mode = space.config.metric, space.config.mode
    columns = [c for c in rows[0] if c != "config"] if rows else ["trial"]
    table = write_table([{k: v for k, v in r.items() if k != "config"} for r in rows], columns,
                        out / "results")
    print(f"\n{table}")
    ranked = [r for r in rows if _finite(r[f"best_{metric}"])]
    if ranked:
        best = (max if mode == "max" else min)(ranked, key=lambda r: r[f"best_{metric}"])
        dump_scenario(space.trial_scenario(best["config"]), out / "best_scenario.yaml")
        print(f"best trial {best['trial']}: {metric} {best[f'best_{metric}']:.4f} at round "
              f"{best['best_round']} → {out / 'best_scenario.yaml'}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("completed", "stopped early", "error",
                                                             "unfinished")}
    print(f"{len(rows)} trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) +
          f"; wall time {wall:.0f} s; tables in {out}")
    if counts["unfinished"] or len(rows) < space.expected_trials():
        overrides = " ".join(args.overrides)
        print(f"the sweep was interrupted: continue it with `fedray tune {args.space} {overrides} "
              f"--storage {args.storage} --resume`".replace("  ", " "))
        return 130
    return 0
