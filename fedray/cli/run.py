"""``fedray run SCENARIO [key=value ...] [--run-dir DIR]``: run a federated simulation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedray.cli.progress import PROGRESS_MODES, progress_display
from fedray.config.load import load_scenario
from fedray.config.safety import directory_problems
from fedray.engine.history import RoundRecord
from fedray.engine.observers import RoundObserver, RunStart
from fedray.errors import ConfigError, FedRayError

HELP = "run a scenario: federated LoRA fine-tuning on Ray actors"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", help="scenario YAML file, e.g. scenarios/mini.yaml")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. train.lr=1e-4")
    parser.add_argument("--run-dir", default=None, help="run directory (default runs/<name>-<time>)")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue a stopped run from its last checkpoint (with its own config)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in a --run-dir that holds a run: the old run is moved aside "
                             "to <dir>.replaced-<time>")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="live progress: bars on a terminal (live), plain lines for logs (plain), "
                             "none (off); auto picks live or plain from where the output goes")


#: Test metrics shown on the progress line and in the summary table, with their short names.
HEADLINE: tuple[tuple[str, str], ...] = (("accuracy", "acc"), ("macro_f1", "f1"), ("auc", "auc"),
                                         ("accuracy_open", "open"), ("accuracy_closed", "closed"),
                                         ("invalid_rate", "invalid"))


def progress_line(record: RoundRecord, total_rounds: int) -> str:
    """One line per round: cohort, loss, eval metrics, time split and traffic."""
    parts = [f"round {record.server_round:>3}/{total_rounds}"]
    if record.server_round > 0:
        loss = "nan" if record.train_loss is None else f"{record.train_loss:.3f}"
        parts.append(f"clients {len(record.clients) - len(record.failures)}/{len(record.clients)}")
        parts.append(f"loss {loss}")
    if record.eval:
        parts.append(" ".join(f"{short} {record.eval[key]:.3f}" for key, short in HEADLINE
                              if key in record.eval))
    parts.append(" ".join(f"{k} {v:.1f}s" for k, v in record.time_s.items()))
    if record.bytes_sent:
        parts.append(f"{record.bytes_sent / 2**20:.2f} MiB")
    return " | ".join(p for p in parts if p)


class ProgressLines(RoundObserver):
    """Prints :func:`progress_line` for every round as it ends."""

    def __init__(self) -> None:
        self.total_rounds = 0

    def on_start(self, start: RunStart) -> None:
        self.total_rounds = start.last_round

    def on_round(self, record: RoundRecord) -> None:
        print(progress_line(record, self.total_rounds), flush=True)


def summary_table(rounds: list[RoundRecord]) -> str:
    """The evaluated rounds as a small table of the headline test metrics."""
    keys = [(k, short) for k, short in HEADLINE if any(k in r.eval for r in rounds)]
    header = f"{'round':>5}  {'train_loss':>10}" + "".join(f"  {short:>8}" for _, short in keys)
    lines = [header, "-" * len(header)]
    for r in rounds:
        if r.eval:
            loss = "-" if r.train_loss is None else f"{r.train_loss:.3f}"
            lines.append(f"{r.server_round:>5}  {loss:>10}" +
                         "".join(f"  {r.eval.get(k, float('nan')):>8.3f}" for k, _ in keys))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    import fedray.checks  # noqa: F401  (registry-aware checks)
    from fedray.engine.modes import build_run_mode
    from fedray.engine.resume import FinishedRunError
    from fedray.engine.simulation import Simulation
    from fedray.report.tensorboard import TensorBoardLogger

    if args.resume:
        if args.scenario or args.overrides or args.run_dir or args.overwrite:
            raise FedRayError("--resume RUN_DIR takes no scenario, overrides, --run-dir or --overwrite: a "
                              "resumed run uses the config.yaml in its run directory")
        if not (Path(args.resume) / "config.yaml").is_file():
            raise FedRayError(f"{args.resume} is not a fedray run directory (no config.yaml)")
        scenario = load_scenario(Path(args.resume) / "config.yaml")
    elif args.scenario is None:
        raise FedRayError("give a scenario file (e.g. scenarios/mini.yaml) or --resume RUN_DIR")
    else:
        scenario = load_scenario(args.scenario, args.overrides)
        if args.run_dir and directory_problems(args.run_dir, "--run-dir"):  # before anything is written
            raise ConfigError(directory_problems(args.run_dir, "--run-dir"), source="command line")
    mode = build_run_mode(scenario)
    observers = [TensorBoardLogger(), progress_display(args.progress), ProgressLines()]
    try:
        simulation = Simulation(scenario, args.resume or args.run_dir, resume=bool(args.resume),
                                overwrite=args.overwrite, observers=observers)
    except FinishedRunError as finished:
        print(f"fedray: {finished}", flush=True)
        return 0
    if simulation.already_finished:
        print(f"fedray: {args.resume} has finished all its rounds; nothing to resume. Its results: "
              f"{Path(args.resume) / 'summary.json'}", flush=True)
        return 0
    strategy = f", strategy {scenario.strategy.name}" if mode.uses_strategy else ""
    print(f"fedray: {scenario.name} ({mode.name}): {mode.header(scenario.partition.num_clients)}, modality "
          f"{scenario.modality.name}{strategy}, model {scenario.model.name}", flush=True)
    summary = simulation.execute()
    print()
    print(summary_table(summary.rounds))
    if summary.best_round is not None:
        print(f"\nbest round on validation: {summary.best_round}")
    print(f"\nrun directory: {summary.run_dir}", file=sys.stdout)
    return 0
