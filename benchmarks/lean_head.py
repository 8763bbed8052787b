"""The lean local Ray head's own cost: its processes' memory when idle, and how long it takes to start.

    PYTHONPATH=. .venv/bin/python benchmarks/lean_head.py              # 5 starts, median
    PYTHONPATH=. .venv/bin/python benchmarks/lean_head.py --starts 3 --idle-s 5 --json out.json

Each start is a fresh interpreter that imports fedray's runtime, times
:func:`fedray.engine.local_ray.start_local_ray` exactly as a run calls it (the machine's CPUs, the lean
system settings, no log monitor, the run's ``ray.init`` settings), waits ``--idle-s`` seconds for the
services to settle with no actor started, reads the resident set size (RSS) of every process under it,
named as :mod:`fedray.bench.proctree` names them, and shuts Ray down. The parent prints, per Ray service,
the median RSS over the starts, the median summed RSS of the services, the median start time, and which
processes ran. Run it with another tree on PYTHONPATH to measure that tree's head the same way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

#: One start, in a fresh interpreter: prints one JSON line.
_ONE_START = """
import json, logging, os, sys, time
import psutil, ray
from fedray.bench.proctree import MIB, process_roles
from fedray.engine.local_ray import start_local_ray
from fedray.engine.runtime import LEAN_SYSTEM_CONFIG, WORKER_ENV

began = time.perf_counter()
start_local_ray(os.cpu_count() or 1, dict(LEAN_SYSTEM_CONFIG), log_monitor=False,
                logging_level=logging.WARNING, log_to_driver=False, runtime_env={"env_vars": WORKER_ENV})
start_s = time.perf_counter() - began
time.sleep(float(sys.argv[1]))
services = {}
for child in psutil.Process().children(recursive=True):
    try:
        roles = process_roles(child.cmdline(), is_root=False)
        rss = child.memory_info().rss / MIB
    except psutil.Error:
        continue
    services[roles[0]] = services.get(roles[0], 0.0) + rss
ray.shutdown()
print(json.dumps({"start_s": start_s, "services": services}), flush=True)
"""


def one_start(idle_s: float) -> dict:
    """Start, measure and stop one lean head in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", _ONE_START, str(idle_s)], capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"a start failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def summary(starts: list[dict]) -> dict:
    """Medians over the starts: per service RSS (MiB), the services' summed RSS, the start time."""
    names = sorted({name for start in starts for name in start["services"]})
    per_service = {name: statistics.median(s["services"].get(name, 0.0) for s in starts) for name in names}
    return {"starts": len(starts), "start_s_median": statistics.median(s["start_s"] for s in starts),
            "start_s_all": [round(s["start_s"], 3) for s in starts],
            "services_rss_mb_median": statistics.median(sum(s["services"].values()) for s in starts),
            "per_service_rss_mb_median": per_service}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=5, help="fresh starts to take the median of")
    parser.add_argument("--idle-s", type=float, default=3.0, help="seconds idle before RSS is read")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    result = summary([one_start(args.idle_s) for _ in range(args.starts)])
    for name, mb in result["per_service_rss_mb_median"].items():
        print(f"{name:40s} {mb:7.1f} MiB")
    print(f"{'Ray services, summed':40s} {result['services_rss_mb_median']:7.1f} MiB")
    print(f"start_local_ray, median of {args.starts}: {result['start_s_median']:.2f} s "
          f"(all: {result['start_s_all']})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
