"""Every FL algorithm on one offline heterogeneity scenario: same data, seeds and budget; final accuracy.

    .venv/bin/python benchmarks/algorithms.py         # on scenarios/offline/missing-b0.5.yaml
    .venv/bin/python benchmarks/algorithms.py --scenario scenarios/mini.yaml federation.rounds=10

Prints a Markdown table (and writes it to ``--out``/algorithms.md): algorithm, server rule, client
objective, test accuracy, macro-F1 and invalid rate at the last round, adapter MiB moved in all.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fedray.config.load import load_scenario
from fedray.engine.history import read_history
from fedray.engine.runtime import ensure_ray
from fedray.engine.simulation import run

#: label → overrides (server rule, client objective, and what the rule needs).
ALGORITHMS: dict[str, list[str]] = {
    "FedAvg": ["strategy.name=fedavg"],
    "FedProx (μ=0.01)": ["strategy.name=fedavg", "objective.name=fedprox", "objective.mu=0.01"],
    "FedAvgM": ["strategy.name=fedavgm", "strategy.server_lr=1.0", "strategy.momentum=0.5"],
    "FedAdagrad": ["strategy.name=fedadagrad", "strategy.eta=0.01"],
    "FedAdam": ["strategy.name=fedadam", "strategy.eta=0.01"],
    "FedYogi": ["strategy.name=fedyogi", "strategy.eta=0.01"],
    "SCAFFOLD": ["strategy.name=scaffold"],
    "FedAdagrad(fedmllm) + adaptive prox": ["strategy.name=fedadagrad", "strategy.variant=fedmllm",
                                            "strategy.eta=0.01", "objective.name=adaptive_prox",
                                            "objective.skip_layers=0"],
    "FedMedian": ["strategy.name=fedmedian"],
    "FedTrimmedAvg (β=0.25)": ["strategy.name=fedtrimmedavg", "strategy.beta=0.25"],
    "Multi-Krum (f=1, m=2)": ["strategy.name=krum", "strategy.num_malicious=1", "strategy.num_to_keep=2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/offline/missing-b0.5.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value applied to every run")
    parser.add_argument("--only", default=None, help="comma-separated labels to run")
    parser.add_argument("--out", default="runs/algorithms")
    args = parser.parse_args()
    out = Path(args.out)
    labels = [x.strip() for x in args.only.split(",")] if args.only else list(ALGORITHMS)
    scenarios = {label: load_scenario(args.scenario, [*args.overrides, *ALGORITHMS[label]])
                 for label in labels}
    started = ensure_ray(next(iter(scenarios.values())).resources)
    rows = []
    try:
        for i, (label, scenario) in enumerate(scenarios.items()):
            start = time.perf_counter()
            summary = run(scenario, out / f"{i:02d}")
            final = summary.final_eval
            mib = sum(h["bytes_sent"] for h in read_history(out / f"{i:02d}" / "history.jsonl")) / 2**20
            rows.append((label, scenario.strategy.name, scenario.objective.name, final.get("accuracy"),
                         final.get("macro_f1"), final.get("invalid_rate"), mib, time.perf_counter() - start))
            print(f"{label}: accuracy {final.get('accuracy', float('nan')):.3f} "
                  f"({rows[-1][-1]:.0f} s)", flush=True)
    finally:
        if started:
            import ray

            ray.shutdown()
    lines = ["| algorithm | server rule | client objective | accuracy | macro-F1 | invalid | MiB moved |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {label} | `{rule}` | `{obj}` | {acc:.3f} | {f1:.3f} | {inv:.3f} | {mib:.1f} |"
              for label, rule, obj, acc, f1, inv, mib, _ in rows]
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "algorithms.md").write_text(table + "\n", encoding="utf-8")
    print(f"\n{args.scenario} {' '.join(args.overrides)}\n\n{table}")


if __name__ == "__main__":
    main()
