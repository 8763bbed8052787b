"""``fedray evidence run|report``: the evidence grid in one command, and its report with intervals and claims.

    fedray evidence run --grid reduced --out runs/evidence      # resumable: finished runs are skipped
    fedray evidence report runs/evidence --write docs/results.md

``run`` goes through the grid's cells (:mod:`fedray.report.evidence_grid`) in one Ray session: a cell
whose ``summary.json`` holds a final evaluation is done and skipped, one with a checkpoint continues from it
(``fedray run --resume``), any other is started afresh. Each finished run appends its wall time to
``<out>/timings.jsonl``. ``report`` reads every run below the root and prints (or writes into a marked
section of a Markdown file) the cells with 95 % t-intervals over seeds, the paired differences, the
paper's claims with their verdicts, and the accuracy curves.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

HELP = "run the evidence grid (seeds × scenarios × methods) and report intervals and the paper's claims"


def add_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="evidence_command", required=True)
    run = sub.add_parser("run", help="run (or resume) a grid")
    run.add_argument("--grid", default="reduced", help="reduced, full or smoke (default reduced)")
    run.add_argument("--out", default="runs/evidence", help="root of the run directories")
    run.add_argument("--dry-run", action="store_true", help="list the runs and their commands, run nothing")
    for part in ("scenarios", "methods", "seeds"):
        run.add_argument(f"--{part}", default=None, help=f"comma-separated subset of the grid's {part}")
    run.add_argument("overrides", nargs="*", help="key=value overrides applied to every run")
    report = sub.add_parser("report", help="tables, claims and curves from a grid's run directories")
    report.add_argument("root", help="directory holding the run directories")
    report.add_argument("--reference", default="local", help="method the paired differences subtract")
    report.add_argument("--write", default=None, metavar="MARKDOWN",
                        help="replace the marked evidence section of this file (created if missing)")
    report.add_argument("--plots", default=None, help="folder for the curves (default: beside --write)")
    report.add_argument("--cite", default=None, help="the command to cite (default: make evidence)")
    report.add_argument("--section", default="evidence",
                        help="name of the marked section --write replaces (default evidence)")
    report.add_argument("--train-loss", action="store_true",
                        help="also draw test metric and training loss per round (plateau-<scenario>.png) "
                             "and tabulate each curve's plateau round")


def main(args: argparse.Namespace) -> int:
    return run_grid(args) if args.evidence_command == "run" else report(args)


# -- run ------------------------------------------------------------------------------------------------
def run_grid(args: argparse.Namespace) -> int:
    import fedray.checks  # noqa: F401  (registry-aware checks)
    from fedray.config.load import load_scenario
    from fedray.report.evidence_grid import get_grid

    grid = get_grid(args.grid).subset(args.scenarios, args.methods, args.seeds)
    cells = grid.cells()
    out = Path(args.out)
    print(f"evidence grid {grid.name}: {grid.description}; {len(cells)} runs under {out}")
    if args.dry_run:
        for cell in cells:
            print(f"  {cell.run_dir(out)}: {cell.command()}")
        return 0
    scenarios = [load_scenario(c.scenario_file(), [*c.overrides, *args.overrides]) for c in cells]
    todo = [(c, s) for c, s in zip(cells, scenarios) if not finished(c.run_dir(out))]
    print(f"{len(cells) - len(todo)} done, {len(todo)} to run")
    if not todo:
        return 0
    from fedray.engine.runtime import ensure_ray
    from fedray.errors import FedRayError

    began, failed = time.perf_counter(), []
    started = ensure_ray(todo[0][1].resources)
    try:
        for index, (cell, scenario) in enumerate(todo, 1):
            try:
                _run_cell(cell, scenario, out, f"[{index}/{len(todo)}]")
            except FedRayError as exc:  # one failed run must not cost the grid: it reruns next time
                failed.append(cell)
                print(f"[{index}/{len(todo)}] {cell.run_dir(out)} failed: {exc}", flush=True)
    finally:
        if started:
            import ray

            ray.shutdown()
    print(f"grid {grid.name}: {len(todo) - len(failed)} runs in {(time.perf_counter() - began) / 60:.1f} min"
          + (f"; {len(failed)} failed (run the same command again to retry them)" if failed else ""))
    return 1 if failed else 0


def finished(run_dir: Path) -> bool:
    """Whether the run has its final evaluation (a run that failed writes a summary without one)."""
    path = run_dir / "summary.json"
    return path.exists() and bool(json.loads(path.read_text(encoding="utf-8")).get("final_eval"))


def _run_cell(cell: Any, scenario: Any, out: Path, progress: str) -> None:
    from fedray.engine.checkpoint import CHECKPOINT_FILE
    from fedray.engine.simulation import run

    run_dir = cell.run_dir(out)
    resume = (run_dir / CHECKPOINT_FILE).exists() and (run_dir / "config.yaml").exists()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # stopped before its first checkpoint: nothing to keep
    start = time.perf_counter()
    summary = run(scenario, run_dir, resume=resume)
    seconds = time.perf_counter() - start
    value = summary.best_eval.get(scenario.eval.select_metric, float("nan"))
    print(f"{progress} {cell.scenario:<22} {cell.method:<34} seed {cell.seed}: "
          f"{scenario.eval.select_metric} {value:.3f} ({seconds:.0f} s{', resumed' if resume else ''})",
          flush=True)
    with (out / "timings.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"run": str(run_dir.relative_to(out)), "seconds": round(seconds, 1),
                                 "resumed": resume}) + "\n")


# -- report ---------------------------------------------------------------------------------------------
def report(args: argparse.Namespace) -> int:
    from fedray.report.evidence import Observation, Observations, evidence_markdown
    from fedray.report.tables import find_runs, load_run

    runs = [load_run(path) for path in find_runs([args.root])]
    if not runs:
        from fedray.errors import FedRayError

        raise FedRayError(f"no run directories under {args.root}; run `fedray evidence run` first")
    obs = Observations(Observation(r.scenario, r.method, r.seed, r.value) for r in runs)
    body = evidence_markdown(obs, runs[0].metric, args.reference)
    plots = Path(args.plots) if args.plots else (Path(args.write).parent / "results" if args.write else None)
    if plots is not None:
        from fedray.report.plots import accuracy_curves

        written = accuracy_curves(runs, plots)
        base = Path(args.write).parent if args.write else Path.cwd()
        body += "\n### Curves (test accuracy per evaluated round, mean ± std over seeds)\n\n" + "\n".join(
            f"![{p.stem}]({_relative(p, base)})" for p in written) + "\n"
    if args.train_loss:
        body += _plateau_section(runs, plots, Path(args.write).parent if args.write else Path.cwd())
    start, end = f"<!-- {args.section}:start -->", f"<!-- {args.section}:end -->"
    section = "\n".join([start, _provenance(args, Path(args.root), len(runs)), "", body, end])
    if args.write:
        _replace_section(Path(args.write), section, start, end)
        print(f"wrote the evidence section of {args.write} ({len(runs)} runs)")
    else:
        print(section)
    return 0


def _plateau_section(runs: list, plots: Path | None, base: Path) -> str:
    """The plateau table and, when there is a plots folder, the accuracy | training-loss figures."""
    from fedray.report.evidence_curves import plateau_figures, plateau_table, stopping_table

    text = ("\n### Plateau: where each seed-mean test curve stops gaining\n\n"
            + "\n".join(plateau_table(runs)) + "\n"
            + "\n### What a grid of R rounds would report (test value at the validation-picked round ≤ R, "
              "mean over seeds)\n\n" + "\n".join(stopping_table(runs)) + "\n")
    if plots is not None:
        text += "\n" + "\n".join(f"![{p.stem}]({_relative(p, base)})"
                                  for p in plateau_figures(runs, plots)) + "\n"
    return text


def _provenance(args: argparse.Namespace, root: Path, n_runs: int) -> str:
    command = args.cite or "make evidence"
    seconds = sum(json.loads(line)["seconds"] for line in (root / "timings.jsonl").read_text().splitlines()
                  if line.strip()) if (root / "timings.jsonl").exists() else None
    took = (f"{seconds / 60:.1f} min of run time summed over runs" if seconds is not None
            else "time not recorded")
    return (f"Made by `{command}` at commit {_commit()} on {time.strftime('%Y-%m-%d')}: {n_runs} runs under "
            f"`{root}`, {took}.")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(unknown)"


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def _replace_section(path: Path, section: str, start: str, end: str) -> None:
    """Put ``section`` (markers included) where ``start``…``end`` are in ``path``, or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
