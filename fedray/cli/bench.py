"""``fedray bench [--quick] [--cases NAME,...] [--out DIR]``: engine speed, efficiency and memory.

Runs the benchmark suite of :mod:`fedray.bench.harness` (tiny model, digits, FedAvg) and the sequential
single-process baseline on the same workloads in the same invocation, then prints a Markdown table and
writes ``bench.md``, ``bench.json`` and ``bench.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "benchmark the engine: time per round and its split, efficiency, memory, scaling"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="two rounds of one step per case (smoke test)")
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    parser.add_argument("--out", default="runs/bench", help="output directory (default runs/bench)")


def main(args: argparse.Namespace) -> int:
    from fedray.bench.harness import SEQUENTIAL, SUITE, quick, run_case, run_sequential
    from fedray.bench.report import markdown_table, plot
    from fedray.engine.runtime import ensure_ray
    from fedray.errors import FedRayError

    cases = quick(SUITE) if args.quick else SUITE
    if args.cases:
        wanted = [c.strip() for c in args.cases.split(",")]
        unknown = sorted(set(wanted) - {c.name for c in cases})
        if unknown:
            raise FedRayError(f"--cases: unknown {unknown}; known: {[c.name for c in cases]}")
        cases = tuple(c for c in cases if c.name in wanted)
    out = Path(args.out)
    started = ensure_ray(_resources(cases))
    try:
        rows = []
        for case in cases:
            row = run_case(case, out)
            print(f"{case.name}: {row['round_s']:.2f} s/round, efficiency {row['efficiency']:.2f}",
                  flush=True)
            rows.append(row)
    finally:
        if started:
            import ray

            ray.shutdown()
    for row, case in zip(rows, cases):
        if case.name in SEQUENTIAL:
            row.update(run_sequential(case))
            row["speedup"] = row["sequential_round_s"] / row["round_s"]
    table = markdown_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(table + "\n", encoding="utf-8")
    (out / "bench.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    plot(rows, out / "bench.png")
    print(table)
    print(f"\nwritten: {out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'}")
    return 0


def _resources(cases):
    from fedray.config.schema import ResourcesConfig

    return ResourcesConfig(actors=max(c.actors for c in cases))
