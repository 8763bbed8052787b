"""``fedray validate FILE [key=value ...]``: report every problem in a scenario or a sweep file, or
confirm it is valid.

A sweep file (``tune_spaces/*.yaml``: it names its base ``scenario`` and a search ``space``) is checked
as ``fedray tune`` would load it: the sweep's own fields, every base scenario with the sweep's
overrides, and the values each searched field can take. The overrides then apply to the sweep file
(``num_samples=4``, ``overrides.federation.rounds=3``).

A valid file can still ask for more than this machine has: when it asks for GPUs, none is found here
and no cluster address is set (``resources.ray_address`` or ``RAY_ADDRESS``), a ``warning:`` line says
so (the exit code stays 0: the file itself is fine). GPUs are looked for without importing torch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable

from fedray.config.load import load_scenario, scenario_to_dict
from fedray.config.yamlio import read_yaml_file

HELP = "check a scenario or sweep file and print every problem found"

#: Top-level keys that only a sweep file has (a scenario has neither field).
SWEEP_KEYS = ("scenario", "space")
NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE",
                        help="scenario YAML file, or a sweep file (tune_spaces/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides")


def main(args: argparse.Namespace) -> int:
    import fedray.checks  # noqa: F401  (registry-aware checks)

    if is_sweep_file(args.file):
        from fedray.tune.space import load_space

        space = load_space(args.file, args.overrides)  # raises ConfigError listing all problems
        print(f"ok: {args.file} is a valid sweep ({space.name!r}: {space.expected_trials()} trials of "
              f"{', '.join(space.bases)}, {len(space.dimensions)} searched field(s))")
        resources = [base.get("resources", {}) for base in space.bases.values()]
    else:
        scenario = load_scenario(args.file, args.overrides)  # raises ConfigError listing all problems
        print(f"ok: {args.file} is a valid scenario ({scenario.name!r})")
        resources = [scenario_to_dict(scenario.resources)]
    for warning in gpu_warnings(resources):
        print(f"warning: {warning}")
    return 0


def is_sweep_file(path: str | Path) -> bool:
    """Whether ``path`` holds a sweep (a mapping with a base ``scenario`` or a search ``space``)."""
    raw = read_yaml_file(path, "scenario or sweep file", "scenarios")
    return isinstance(raw, Mapping) and any(key in raw for key in SWEEP_KEYS)


def gpu_warnings(resources: Iterable[Mapping[str, Any]], gpus_here: int | None = None) -> list[str]:
    """A warning when a resources section asks for GPUs that neither this machine nor a cluster has.

    ``gpus_here`` defaults to :func:`local_gpu_count`; with a cluster address nothing is checked (the
    cluster's GPUs are not visible from here)."""
    asking = [r for r in resources if float(r.get("gpus_per_actor") or 0) > 0 and not r.get("ray_address")]
    if not asking or os.environ.get("RAY_ADDRESS"):
        return []
    if (local_gpu_count() if gpus_here is None else gpus_here) > 0:
        return []
    asked = asking[0]["gpus_per_actor"]
    return [f"resources.gpus_per_actor={asked:g} asks for GPUs, but none was found on this machine and no "
            f"cluster is set (resources.ray_address or RAY_ADDRESS): the run could not place its client "
            f"actors. Set resources.gpus_per_actor=0 to run on CPU, or resources.ray_address=<host:port> "
            f"of a Ray cluster with GPUs."]


def local_gpu_count() -> int:
    """NVIDIA GPUs this process could use, as Ray would count them, without importing torch:
    ``CUDA_VISIBLE_DEVICES`` when set, else the driver's ``/proc`` entries, else ``nvidia-smi -L``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if NVIDIA_PROC.is_dir():
        return len(list(NVIDIA_PROC.iterdir()))
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())
