"""Checkpoints that scale: SCAFFOLD with 1,000 clients, 10 per round, a checkpoint every round.

Runs ``fedray run scenarios/mini.yaml`` with those settings (tiny model, one local step) and watches it:
the wall time between consecutive ``history.jsonl`` lines (one round, its checkpoint included) and the
resident memory of the driver and of the aggregator actor as each round ends. Prints the means over two
windows of rounds (early and late); with checkpoints that reference the client-state files instead of
rewriting them, both stay flat.

    .venv/bin/python benchmarks/checkpoint_scale.py                  # 40 rounds: a few minutes on 2 CPUs
    .venv/bin/python benchmarks/checkpoint_scale.py --rounds 12       # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

OVERRIDES = ["partition.num_clients=1000", "partition.min_client_size=1", "strategy.name=scaffold",
             "federation.clients_per_round=10", "federation.checkpoint_every=1",
             "train.local_steps=1", "train.batch_size=2", "eval.every=0", "eval.at_start=false",
             "eval.max_new_tokens=1", "data.max_test_samples=16"]


def _aggregator(driver: psutil.Process) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        if any("AggregatorActor" in part for part in proc.info["cmdline"] or []):
            return proc
    return None


def _rss_mib(proc: psutil.Process | None) -> float:
    try:
        return proc.memory_info().rss / 2**20 if proc is not None else float("nan")
    except psutil.Error:
        return float("nan")


def _scenario(folder: Path) -> Path:
    """scenarios/mini.yaml with an iid partition (1,000 clients of one or two digits each)."""
    raw = yaml.safe_load(Path("scenarios/mini.yaml").read_text(encoding="utf-8"))
    raw["partition"] = {"name": "iid"}
    path = folder / "scale.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def checkpoint_seconds(run_dir: Path) -> dict[int, float]:
    """Round → the seconds of the checkpoint written after the previous round (``time_s.checkpoint``)."""
    lines = (run_dir / "history.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["round"]: r["time_s"].get("checkpoint", 0.0) for r in map(json.loads, lines)}


def watch(rounds: int, run_dir: Path, extra: list[str] = ()) -> list[tuple[int, float, float, float]]:
    """(round, seconds since the previous round's line, driver MiB, aggregator MiB) per round."""
    cmd = [sys.executable, "-m", "fedray", "run", str(_scenario(run_dir.parent)),
           f"federation.rounds={rounds}", *OVERRIDES, *extra, "--run-dir", str(run_dir)]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    driver, aggregator = psutil.Process(process.pid), None
    history, seen, last, rows = run_dir / "history.jsonl", 0, None, []
    while process.poll() is None:
        time.sleep(0.05)
        aggregator = aggregator or _aggregator(driver)
        lines = history.read_text().count("\n") if history.exists() else 0
        if lines > seen:
            now = time.monotonic()
            if last is not None:
                rows.append((lines, now - last, _rss_mib(driver), _rss_mib(aggregator)))
            seen, last = lines, now
    if process.returncode:
        raise SystemExit(f"the run failed (exit {process.returncode}); see {run_dir}/run.log")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("overrides", nargs="*", help="further key=value overrides, e.g. "
                        "federation.client_states_in_memory=64 (the aggregator's in-memory cap; default 256)")
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="fedray-ckpt-scale-")) / "run"
    rows = watch(args.rounds, run_dir, args.overrides)
    checkpoint_s = checkpoint_seconds(run_dir)
    windows = [(2, 11), (args.rounds - 9, args.rounds)] if args.rounds >= 20 else [(2, args.rounds)]
    print(f"{'rounds':>9}  {'s/round':>8}  {'checkpoint s':>12}  {'driver MiB':>10}  {'aggregator MiB':>14}")
    for first, last in windows:
        chosen = [r for r in rows if first <= r[0] <= last]
        print(f"{first:>4}–{last:<4}  {statistics.mean(r[1] for r in chosen):>8.2f}  "
              f"{statistics.mean(checkpoint_s.get(r[0], 0.0) for r in chosen):>12.3f}  "
              f"{statistics.mean(r[2] for r in chosen):>10.0f}  "
              f"{statistics.mean(r[3] for r in chosen):>14.0f}")
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
