"""One row per case from its measurements, the two Markdown tables and the plot of ``fedray bench``.

- ``limit`` = ⌈cohort / actors⌉ × the isolated one-client fit (one thread, pre-tensorised batches): the
  fewest seconds a round can take on the case's actors if nothing but training happened;
- ``efficiency`` = limit / fedray's s/round (1.0 would be the limit itself);
- ``plain ÷ fedray`` = the plain loop's s/round / fedray's (above 1: fedray is faster);
- ``max Δ loss``: the largest difference between fedray's and the plain loop's per-round training losses,
  a check that both did the same work.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fedray.bench.cases import Case

GIB = 1024.0


def case_row(case: Case, engine: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
    """The figures of one case (the raw measurements stay under ``engine`` and ``plain``)."""
    limit = case.waves * plain["isolated_fit_s"]
    roles = engine["memory"]["roles"]

    def role(name: str, key: str) -> float:
        return roles.get(name, {}).get(key, 0.0)

    return {
        "case": case.name, "clients": case.num_clients, "per_round": case.clients_per_round,
        "actors": case.actors, "local_steps": case.local_steps, "rounds": case.rounds,
        "s_per_round": engine["s_per_round"], "wall_s_per_round": engine["wall_s_per_round"],
        "limit_s": limit, "efficiency": limit / engine["s_per_round"],
        "plain_s_per_round": plain["s_per_round"],
        "plain_ratio": plain["s_per_round"] / engine["s_per_round"],
        "loss_max_abs_diff": _max_diff(engine["train_loss"], plain["train_loss"]),
        "startup_s": engine["startup_s"], "plain_startup_s": plain["startup_s"],
        "peak_rss_gib": engine["memory"]["peak_rss_mb"] / GIB,
        "peak_pss_gib": engine["memory"]["peak_pss_mb"] / GIB,
        "plain_peak_rss_gib": plain["memory"]["peak_rss_mb"] / GIB,
        "driver_mb": role("driver", "process_mb"),
        "client_actor_mb": role("actor:ClientActor", "process_mb"),
        "aggregator_mb": role("actor:AggregatorActor", "process_mb"),
        "ray_services_mb": role("ray services", "total_mb"),
        "idle_workers_mb": role("ray idle workers", "total_mb"),
        "engine": engine, "plain": plain,
    }


def _max_diff(a: list[float | None], b: list[float]) -> float:
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    return max((abs(x - y) for x, y in pairs), default=float("nan"))


#: (row key, column title, format) of the two tables.
SPEED = (("case", "case", "{}"), ("clients", "clients", "{}"), ("per_round", "per round", "{}"),
         ("s_per_round", "s/round", "{:.3f}"), ("wall_s_per_round", "wall s/round", "{:.3f}"),
         ("limit_s", "limit s", "{:.3f}"), ("efficiency", "efficiency", "{:.2f}"),
         ("plain_s_per_round", "plain loop s/round", "{:.3f}"), ("plain_ratio", "plain ÷ fedray", "{:.2f}"),
         ("loss_max_abs_diff", "max Δ loss", "{:.1e}"))
MEMORY = (("case", "case", "{}"), ("startup_s", "start-up s", "{:.1f}"),
          ("plain_startup_s", "plain start-up s", "{:.1f}"), ("peak_rss_gib", "peak RSS GiB", "{:.2f}"),
          ("peak_pss_gib", "peak PSS GiB", "{:.2f}"), ("plain_peak_rss_gib", "plain peak RSS GiB", "{:.2f}"),
          ("driver_mb", "driver MiB", "{:.0f}"), ("client_actor_mb", "client actor MiB", "{:.0f}"),
          ("aggregator_mb", "aggregator MiB", "{:.0f}"), ("ray_services_mb", "Ray services MiB", "{:.0f}"),
          ("idle_workers_mb", "idle workers MiB", "{:.0f}"))


def markdown_table(rows: list[dict[str, Any]], columns=SPEED) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def report(rows: list[dict[str, Any]], command: str) -> str:
    """Both tables under the command that produced them."""
    return (f"`{command}`\n\n**Speed** (s/round: rounds 2–N, evaluation excluded)\n\n"
            f"{markdown_table(rows)}\n\n"
            f"**Start-up and memory** (peaks over the whole process tree)\n\n"
            f"{markdown_table(rows, MEMORY)}\n")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Seconds per round of fedray, the plain loop and the limit, per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["case"] for r in rows]
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(rows), 4))
    width = 0.27
    for i, (key, label) in enumerate((("s_per_round", "fedray"), ("plain_s_per_round", "plain loop"),
                                      ("limit_s", "limit"))):
        ax.bar([x + (i - 1) * width for x in range(len(rows))], [r[key] for r in rows], width, label=label)
    ax.set_xticks(range(len(rows)), names)
    ax.set_ylabel("seconds per round (rounds 2–N)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
