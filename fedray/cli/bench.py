"""``fedray bench [--cases NAME,...] [--quick] [--out DIR]``: engine speed, start-up and memory per case.

For each case of :mod:`fedray.bench.cases` it writes the case's scenario, runs it as ``python -m fedray run``
and then runs the plain one-process loop (:mod:`fedray.bench.plain_loop`) on the same scenario, each as a
subprocess measured from outside (:mod:`fedray.bench.runner`), one after the other. It prints two Markdown
tables and writes ``bench.md``, ``bench.json`` and ``bench.png`` to ``--out``; each case's run directory,
logs and plain-loop result stay under ``--out/<case>``. Figures are only comparable within one invocation
on an otherwise idle machine (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

HELP = "benchmark the engine against the plain one-process loop: s/round, limit, start-up, memory"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", default=None,
                        help="comma-separated case names (default: reference,overhead,scale; also "
                             "scale-control)")
    parser.add_argument("--quick", action="store_true", help="two rounds of one local step (smoke test)")
    parser.add_argument("--out", default="runs/bench", help="output directory (default runs/bench)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed to each subprocess (default 1800)")
    parser.add_argument("--plain-threads", type=int, default=2,
                        help="torch threads of the plain loop (default 2, the cores of two 1-CPU actors)")


def main(args: argparse.Namespace) -> int:
    from fedray.bench.cases import case_scenario, case_scenario_dict, select_cases
    from fedray.bench.runner import measure_engine, measure_plain_loop
    from fedray.bench.table import case_row, plot, report
    from fedray.config.yamlio import dump_yaml

    cases = select_cases(args.cases, args.quick)
    out = Path(args.out).resolve()
    command = _command(args, [c.name for c in cases])
    rows = []
    for case in cases:
        case_scenario(case)  # every problem reported before anything runs
        case_dir = out / case.name
        case_dir.mkdir(parents=True, exist_ok=True)
        scenario_path = case_dir / "scenario.yaml"
        scenario_path.write_text(f"# fedray bench case {case.name!r}; run alone with: fedray run "
                                 f"{scenario_path}\n" + dump_yaml(case_scenario_dict(case)), encoding="utf-8")
        print(f"{case.name}: fedray run ...", flush=True)
        engine = measure_engine(scenario_path, case_dir, args.timeout)
        print(f"{case.name}: plain loop ...", flush=True)
        plain = measure_plain_loop(scenario_path, case_dir, args.timeout, args.plain_threads)
        rows.append(case_row(case, engine, plain))
        row = rows[-1]
        print(f"{case.name}: {row['s_per_round']:.3f} s/round, limit {row['limit_s']:.3f} s, efficiency "
              f"{row['efficiency']:.2f}, plain loop {row['plain_s_per_round']:.3f} s/round", flush=True)
    text = report(rows, command)
    (out / "bench.md").write_text(text, encoding="utf-8")
    (out / "bench.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    plot(rows, out / "bench.png")
    print("\n" + text)
    print(f"written: {out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'}")
    return 0


def _command(args: argparse.Namespace, names: list[str]) -> str:
    """The command line that reproduces this invocation (shown above the tables)."""
    parts = ["fedray", "bench", "--cases", ",".join(names)] + (["--quick"] if args.quick else [])
    if args.plain_threads != 2:
        parts += ["--plain-threads", str(args.plain_threads)]
    return " ".join(shlex.quote(p) for p in parts + ["--out", args.out])
