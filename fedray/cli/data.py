"""``fedray data inspect|show SCENARIO [key=value ...]``: who holds what, and what the model is shown.

Both build the scenario's federated data exactly as a run would (same seed, same partition and modality
plan) without starting Ray.

- ``inspect [--json] [--plot PNG]`` prints a per-client table of sizes, label histogram and modality mix
  and saves a PNG plot; ``--json`` prints the clients of the manifest instead.
- ``show [--client N] [--limit K] [--test] [--json]`` prints samples exactly as a client trains on them:
  the user turn (the image slot written ``<image>``) and the assistant's target, as the scenario's prompt
  style writes them, and the text the model sees, rendered by the scenario's chat template (through the
  model's processor, built without the model where the builder allows). ``--test`` shows the main test
  set's prompts instead (full modalities, as evaluation renders them).
- ``check [--max-images N]`` verifies the local copies of the scenario's datasets before a long run: files
  present, rows per split, images readable (see :mod:`fedray.cli.data_check`); exit 2 lists the problems.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fedray.cli import data_check
from fedray.config.load import load_scenario

HELP = ("a scenario's data before a run: who holds what (inspect), what the model is shown (show), whether "
        "the local copies are whole (check)")
INSPECT_HELP = "inspect a scenario's data: per-client sizes, labels and modalities"
SHOW_HELP = "show samples as a client trains on them: prompt, target, rendered chat template"
MODALITY_ORDER = ("image+text", "image", "text", "none")


def add_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    inspect = sub.add_parser("inspect", help=INSPECT_HELP, description=INSPECT_HELP)
    inspect.add_argument("scenario", help="scenario YAML file")
    inspect.add_argument("overrides", nargs="*", help="key.path=value overrides")
    inspect.add_argument("--json", action="store_true", help="print the clients as JSON")
    inspect.add_argument("--plot", default=None,
                         help="PNG path (default <output.root>/<name>-clients.png; 'none' to skip)")
    show = sub.add_parser("show", help=SHOW_HELP, description=SHOW_HELP)
    show.add_argument("scenario", help="scenario YAML file")
    show.add_argument("overrides", nargs="*", help="key.path=value overrides")
    show.add_argument("--client", type=int, default=None, help="only this client (default: every client)")
    show.add_argument("--limit", type=int, default=3, help="samples per client (default 3)")
    show.add_argument("--test", action="store_true", help="the main test set's prompts instead")
    show.add_argument("--json", action="store_true", help="print a JSON list of samples")
    check = sub.add_parser("check", help=data_check.HELP, description=data_check.HELP)
    data_check.add_arguments(check)


def main(args: argparse.Namespace) -> int:
    if args.data_command == "show":
        from fedray.cli.data_show import show

        return show(args)
    if args.data_command == "check":
        return data_check.check(args)
    return inspect(args)


def inspect(args: argparse.Namespace) -> int:
    import fedray.checks  # noqa: F401  (registry-aware checks)
    from fedray.data.federated import build_federated_data
    from fedray.data.manifest import build_manifest

    scenario = load_scenario(args.scenario, args.overrides)
    data = build_federated_data(scenario)
    labels = data.train.column("label").fill_null(-1).to_numpy()
    manifest = build_manifest(data.specs, labels, data.label_names)
    if args.json:
        keys = ("client_id", "num_samples", "label_counts", "modality_counts", "task")
        print(json.dumps([{k: c[k] for k in keys} for c in manifest["clients"]], indent=2))
        return 0
    print(client_table(manifest))
    if args.plot != "none":
        path = Path(args.plot or Path(scenario.output.root) / f"{scenario.name}-clients.png")
        plot_clients(manifest, path, title=scenario.name)
        print(f"\nplot: {path}")
    return 0


def client_table(manifest: dict[str, Any]) -> str:
    """One line per client: size, task, modality mix, label counts; then the skew summary."""
    lines = [f"{'client':>6}  {'samples':>7}  {'task':<16}  {'modalities':<34}  labels"]
    for c in manifest["clients"]:
        mix = " ".join(f"{k}={v}" for k, v in c["modality_counts"].items())
        labels = " ".join(f"{k}={v}" for k, v in c["label_counts"].items())
        lines.append(f"{c['client_id']:>6}  {c['num_samples']:>7}  {c['task']:<16}  {mix:<34}  {labels}")
    skew = manifest["skew"]
    lines.append(f"\n{manifest['num_clients']} clients, {manifest['num_samples']} samples; label skew "
                 f"(TV distance from the global mix): mean {skew['mean_tv']:.3f}, max {skew['max_tv']:.3f}")
    return "\n".join(lines)


def plot_clients(manifest: dict[str, Any], path: Path, title: str) -> None:
    """Two stacked bar charts per client: label counts, and modality mix."""
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    clients = manifest["clients"]
    ids = [c["client_id"] for c in clients]
    fig, (ax_labels, ax_mod) = plt.subplots(1, 2, figsize=(12, 4.5))
    _stacked(ax_labels, ids, [c["label_counts"] for c in clients],
             list(dict.fromkeys(k for c in clients for k in c["label_counts"])), "labels")
    _stacked(ax_mod, ids, [c["modality_counts"] for c in clients], list(MODALITY_ORDER), "modalities")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _stacked(ax: Any, ids: list[int], counts: list[dict[str, int]], keys: list[str], what: str) -> None:
    bottom = [0] * len(ids)
    for key in keys:
        heights = [c.get(key, 0) for c in counts]
        if any(heights):
            ax.bar(ids, heights, bottom=bottom, label=key)
            bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_xlabel("client")
    ax.set_ylabel("samples")
    ax.set_title(f"{what} per client")
    ax.set_xticks(ids)
    ax.legend(fontsize=7, ncol=2 if len(keys) > 6 else 1)
