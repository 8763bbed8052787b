"""``fedray report DIR... [--out DIR] [--metric NAME]``: tables and figures over finished runs.

Finds every run directory at or below the given directories (a sweep directory works), then writes to
``--out`` (default ``runs/report``):

- ``results.md`` / ``.csv``: methods × scenarios, the test metric at the best validation round as
  mean ± std over runs (their count in brackets); runs of a method that differ in more than their seed
  (a sweep's trials) get a row each, labelled with what differs (``fedavg [train.lr=0.001]``), so
  different configurations are never averaged; ``runs.csv``: one line per run;
- ``protocols.md`` / ``.csv``: where runs were scored by the fedmllm protocol too (``eval.protocol``),
  the strict metrics (``accuracy``, ``macro_f1``, ``auc``) beside the fedmllm ones (``fedmllm_accuracy``,
  ``fedmllm_f1``, ``fedmllm_auc``) at the same round, mean ± std over runs;
- ``communication.md`` / ``.csv``: total adapter traffic per run (MiB);
- ``fairness.md`` / ``.csv``: per-client spread where runs recorded per-client evaluations (the local
  baseline), skipped otherwise;
- ``curves-<scenario>.png`` and ``clients-<scenario>.png``.

``--invalid [N]`` prints instead, per run, the N (default 10) most common invalid answers of its last
evaluated round, from the predictions a run keeps with ``eval.save_predictions``
(:mod:`fedray.report.invalid`).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from fedray.config.yamlio import read_yaml_file
from fedray.errors import ConfigError, FedRayError

HELP = "tables (methods × scenarios), curves, communication and fairness over run directories"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", help="run directories, or directories holding them (searched "
                                                "recursively, e.g. runs/tune/<sweep>)")
    parser.add_argument("--out", default="runs/report", help="output directory (default runs/report)")
    parser.add_argument("--metric", default=None,
                        help="test metric to tabulate (default: each run's eval.select_metric)")
    parser.add_argument("--invalid", nargs="?", const=10, type=int, default=None, metavar="N",
                        help="print each run's N (default 10) most common invalid answers instead "
                             "(needs eval.save_predictions)")


def main(args: argparse.Namespace) -> int:
    from fedray.report.plots import accuracy_curves, client_spread
    from fedray.report.tables import (
        communication_table,
        fairness_table,
        find_runs,
        load_run,
        protocol_table,
        results_table,
        row_labels,
        runs_rows,
        write_table,
    )

    paths = find_runs(args.dirs)
    if not paths:
        raise FedRayError(f"no run directories (config.yaml + history.jsonl) under {' '.join(args.dirs)}")
    for path in paths:
        check_run_files(path)
    if args.invalid is not None:
        from fedray.report.invalid import invalid_view

        print(invalid_view(paths, args.invalid))
        return 0
    runs = [load_run(p, args.metric) for p in paths]
    out = Path(args.out)
    metrics = Counter(r.metric for r in runs)
    scenarios = sorted({r.scenario for r in runs})
    print(f"{len(runs)} runs, {len({r.method for r in runs})} methods, {len(scenarios)} scenarios; "
          f"metric {', '.join(metrics)} (test, at the best validation round)\n")
    print(write_table(results_table(runs), ["method", *scenarios], out / "results"))
    write_table(runs_rows(runs), list(runs_rows(runs[:1])[0]), out / "runs")
    protocols, columns = protocol_table(runs)
    if protocols:
        print("\nstrict and fedmllm protocols side by side (test, same round):\n")
        print(write_table(protocols, ["method", "scenario", "runs", *columns], out / "protocols"))
    print("\ncommunication (MiB per run):\n")
    print(write_table(communication_table(runs), ["method", *scenarios], out / "communication"))
    fairness = fairness_table(runs)
    if fairness:
        print("\nper-client spread (last per-client evaluation):\n")
        print(write_table(fairness, list(fairness[0]), out / "fairness"))
    else:
        print("\nno per-client evaluations (the local baseline records them): fairness table skipped")
    rows = Counter(zip(row_labels(runs), (r.scenario for r in runs), (r.seed for r in runs)))
    duplicates = [k for k, n in rows.items() if n > 1]
    if duplicates:
        print(f"\nnote: {len(duplicates)} cells hold several runs of one configuration and one seed (a "
              "sweep that repeats a configuration); their ± is over those repeats, not over seeds")
    figures = accuracy_curves(runs, out) + client_spread(runs, out)
    print(f"\n{len(figures)} figures and the tables in {out}")
    return 0


def check_run_files(run_dir: Path) -> None:
    """Read a run directory's config.yaml and history.jsonl as the tables will, and raise one
    :class:`FedRayError` naming the file (and line) that cannot be read, before any table is written."""
    config = read_yaml_file(run_dir / "config.yaml", "run config", "")
    if not isinstance(config, dict):
        raise ConfigError([f"holds a {type(config).__name__}, expected the mapping fedray writes; the run "
                           "directory is damaged, leave it out of the report"],
                          source=str(run_dir / "config.yaml"))
    history = run_dir / "history.jsonl"
    try:
        lines = history.read_bytes().splitlines()
    except OSError as exc:
        raise FedRayError(f"cannot read {history}: {exc.strerror or exc}") from None
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            cut = " (it is the last line: a run stopped mid-write may have cut it)" if n == len(lines) else ""
            raise FedRayError(f"{history} line {n} is not a JSON round record{cut}; resume the run to "
                              "repair it, or delete that line, or leave this run out of the report") from None
        if not isinstance(record, dict) or not isinstance(record.get("round"), int):
            raise FedRayError(f"{history} line {n} is not a round record (no integer 'round'); delete that "
                              "line, or leave this run out of the report")
