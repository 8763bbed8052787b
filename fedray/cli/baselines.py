"""``fedray baselines SCENARIO... [key=value ...] [--modes ...] [--out DIR]``: the baselines table.

Runs every scenario under every mode (``zero_shot``, ``local``, ``centralized``, ``federated``: same data,
model and budget) in one Ray session, then writes ``results.csv`` and ``results.md`` to ``--out``: one
row per mode, one column per scenario, holding the test value of ``eval.select_metric`` at the round the
validation split picked (the last evaluated round when there is no validation split), with the local
baseline as mean ± std over clients.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from fedray.config.load import load_scenario

HELP = "run baselines (zero-shot, local, centralized) and federated on scenarios; write a table"
MODES = ("zero_shot", "local", "centralized", "federated")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenarios", nargs="+",
                        help="scenario YAML files, then optional key=value overrides")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated (default {','.join(MODES)})")
    parser.add_argument("--out", default="runs/baselines", help="output directory (default runs/baselines)")


def main(args: argparse.Namespace) -> int:
    import fedray.checks  # noqa: F401  (registry-aware checks)
    from fedray.engine.runtime import ensure_ray
    from fedray.errors import ConfigError

    files = [a for a in args.scenarios if "=" not in a]
    overrides = [a for a in args.scenarios if "=" in a]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ConfigError([f"--modes: unknown {unknown}; choose from {list(MODES)}"], source="command line")
    scenarios = [load_scenario(f, overrides) for f in files]  # validate all before running any
    out = Path(args.out)
    started = ensure_ray(scenarios[0].resources)
    try:
        results = [_run_one(s, mode, out) for s in scenarios for mode in modes]
    finally:
        if started:
            import ray

            ray.shutdown()
    write_tables(results, [s.name for s in scenarios], modes, out)
    print((out / "results.md").read_text(encoding="utf-8"))
    return 0


def _run_one(scenario: Any, mode: str, out: Path) -> dict[str, Any]:
    from fedray.engine.simulation import run
    from fedray.report.tensorboard import TensorBoardLogger

    start = time.perf_counter()
    summary = run(replace(scenario, mode=mode), out / scenario.name / mode, observers=[TensorBoardLogger()])
    metric = scenario.eval.select_metric
    chosen = summary.best_eval
    print(f"{scenario.name:<28} {mode:<12} {metric} {chosen.get(metric, float('nan')):.3f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    return {"scenario": scenario.name, "mode": mode, "metric": metric,
            "value": chosen.get(metric, float("nan")), "std": chosen.get(f"{metric}_std", float("nan")),
            "invalid_rate": chosen.get("invalid_rate", float("nan")),
            "best_round": summary.best_round, "seconds": round(time.perf_counter() - start, 1)}


def write_tables(results: list[dict[str, Any]], scenarios: list[str], modes: list[str], out: Path) -> None:
    """``results.csv`` (one line per run) and ``results.md`` (modes × scenarios)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    cell = {(r["scenario"], r["mode"]): _cell(r) for r in results}
    metric = results[0]["metric"]
    lines = [f"| {metric} (test, best validation round) | " + " | ".join(scenarios) + " |",
             "|---" * (len(scenarios) + 1) + "|"]
    lines += [f"| {mode} | " + " | ".join(cell.get((s, mode), "-") for s in scenarios) + " |"
              for mode in modes]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cell(result: dict[str, Any]) -> str:
    value, std = result["value"], result["std"]
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f} ± {std:.3f}" if not math.isnan(std) else f"{value:.3f}"
