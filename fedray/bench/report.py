"""The benchmark table (Markdown) and plot (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = (("case", "case", "{}"), ("clients", "clients", "{}"), ("per_round", "per round", "{}"),
           ("actors", "actors", "{}"), ("round_s", "s/round", "{:.2f}"), ("fit_s", "fit s", "{:.2f}"),
           ("aggregate_s", "aggregate s", "{:.3f}"), ("compute_s", "compute s", "{:.2f}"),
           ("efficiency", "efficiency", "{:.2f}"), ("rounds_per_min", "rounds/min", "{:.1f}"),
           ("bytes_per_round", "MiB/round", "{}"), ("actor_peak_mb", "actor peak MiB", "{:.0f}"),
           ("driver_peak_mb", "driver peak MiB", "{:.0f}"), ("speedup", "vs sequential", "{}"))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key, "")
            if key == "bytes_per_round":
                value = f"{value / 2**20:.2f}"
            elif key == "speedup":
                value = f"{value:.2f}×" if isinstance(value, float) else "-"
            else:
                value = fmt.format(value)
            cells.append(value)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Seconds per round (split into fit and aggregate) and efficiency per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["case"] for r in rows]
    fig, (ax_time, ax_eff) = plt.subplots(1, 2, figsize=(12, 4))
    fit = [r["fit_s"] for r in rows]
    ax_time.bar(names, fit, label="fit (dispatch, compute, transfer)")
    ax_time.bar(names, [r["aggregate_s"] for r in rows], bottom=fit, label="aggregate")
    seq = [r.get("sequential_round_s") for r in rows]
    ax_time.scatter([n for n, s in zip(names, seq) if s], [s for s in seq if s], color="black",
                    marker="x", label="sequential baseline", zorder=3)
    ax_time.set_ylabel("seconds per round")
    ax_time.legend(fontsize=8)
    ax_eff.bar(names, [r["efficiency"] for r in rows])
    ax_eff.set_ylabel("client compute / (fit wall × actors)")
    ax_eff.set_ylim(0, 1.05)
    for ax in (ax_time, ax_eff):
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
