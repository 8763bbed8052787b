"""Running one bench case: ``fedray run`` and the plain loop as subprocesses, measured from outside.

Each is launched as its own process (so its imports, start-up and memory are what a user's run has) while
a :class:`~fedray.bench.proctree.ProcessTreeSampler` samples the memory of it and every descendant, and,
for the engine, the run's ``history.jsonl`` is polled so that the moment each round's line is written is
known. From those:

- **s/round**: the mean over rounds 2..N of the round's ``time_s`` entries except ``eval`` (fit and
  aggregate; round 1 pays for warm-up; the final round's unavoidable evaluation is left out);
- **wall s/round**: (time round N−1's line was written − time round 1's was) / (N − 2): every second
  between rounds, whatever the engine's own split records (needs N ≥ 3, since round N evaluates);
- **start-up**: launch → start of round 1 = (time round 1's line was written − round 1's ``time_s`` total)
  − launch time. A line's time is the file's modification time when exactly that one new line appeared
  since the previous poll (every 0.05 s), else the poll's time (later by at most one poll interval).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fedray.bench.proctree import ProcessTreeSampler, TreeMemory
from fedray.errors import FedRayError

POLL_S = 0.05


class BenchError(FedRayError):
    """A bench subprocess failed or ran out of time."""


@dataclass
class HistoryWatch:
    """When each round's line of a ``history.jsonl`` appeared (see the module docstring)."""

    path: Path
    line_unix: dict[int, float] = field(default_factory=dict)
    exact: dict[int, bool] = field(default_factory=dict)  # False: the poll's time, not the file's
    _seen: int = 0

    def poll(self) -> None:
        """Read the lines written since the last poll; an inconsistent read is retried at the next poll."""
        try:
            before = self.path.stat()
            text = self.path.read_bytes()
            after = self.path.stat()
        except FileNotFoundError:
            return
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) \
                or len(text) != after.st_size:
            return  # written to while being read
        complete = [line for line in text.decode("utf-8").split("\n")[:-1] if line.strip()]
        new = complete[self._seen:]
        now = time.time()
        for line in new:
            server_round = json.loads(line)["round"]
            self.line_unix[server_round] = after.st_mtime_ns / 1e9 if len(new) == 1 else now
            self.exact[server_round] = len(new) == 1
        self._seen = len(complete)


@dataclass
class MeasuredRun:
    """A finished subprocess: its exit status, times and the memory of its process tree."""

    returncode: int
    launched_unix: float
    seconds: float
    memory: TreeMemory
    log: Path


def subprocess_env() -> dict[str, str]:
    """This environment minus ``RAY_ADDRESS``: every case starts its own local Ray, as a user's run does."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run_measured(argv: Sequence[str], log: Path, timeout_s: float,
                 watch: HistoryWatch | None = None) -> MeasuredRun:
    """Run ``argv`` to completion with its output in ``log``; sample its tree's memory and poll ``watch``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as out:
        launched = time.time()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(),
                                start_new_session=True)
        with ProcessTreeSampler(proc.pid) as sampler:
            try:
                _wait(proc, launched, timeout_s, watch, log)
            except BaseException:  # over time, interrupted or terminated: leave nothing running
                _stop(proc)
                raise
        if watch is not None:
            watch.poll()
    return MeasuredRun(proc.returncode, launched, time.time() - launched, sampler.result(), log)


def _wait(proc: subprocess.Popen, launched: float, timeout_s: float, watch: HistoryWatch | None,
          log: Path) -> None:
    while proc.poll() is None:
        if watch is not None:
            watch.poll()
        if time.time() - launched > timeout_s:
            raise BenchError(f"{' '.join(map(str, proc.args))} ran over {timeout_s:.0f} s and was stopped; "
                             f"see {log}, or raise --timeout")
        time.sleep(POLL_S)


def _stop(proc: subprocess.Popen) -> None:
    """End the process group this module started (the subprocess is its leader), then reap it."""
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break  # the group has ended
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=30)


def _failed(what: str, run: MeasuredRun) -> BenchError:
    tail = run.log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
    return BenchError(f"{what} exited with status {run.returncode}; the end of {run.log}:\n"
                      + "\n".join(tail))


# -- the engine -----------------------------------------------------------------------------------------
def measure_engine(scenario_path: Path, case_dir: Path, timeout_s: float) -> dict[str, Any]:
    """``python -m fedray run SCENARIO`` measured from outside (see the module docstring)."""
    run_dir = case_dir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a previous bench's run: fedray refuses to run into it
    watch = HistoryWatch(run_dir / "history.jsonl")
    argv = [sys.executable, "-m", "fedray", "run", str(scenario_path), "--run-dir", str(run_dir)]
    run = run_measured(argv, case_dir / "fedray.log", timeout_s, watch)
    if run.returncode != 0:
        raise _failed("fedray run", run)
    records = [json.loads(line) for line in watch.path.read_text(encoding="utf-8").splitlines() if line]
    return engine_summary([r for r in records if r["round"] > 0], watch, run)


def round_seconds(record: dict[str, Any]) -> float:
    """A round's recorded time except its evaluation."""
    return sum(v for k, v in record["time_s"].items() if k != "eval")


def engine_summary(records: list[dict[str, Any]], watch: HistoryWatch, run: MeasuredRun) -> dict[str, Any]:
    """s/round, its split, wall s/round, start-up, losses and memory of one engine run."""
    by_round = {r["round"]: r for r in records}
    last = max(by_round)
    timed = [by_round[r] for r in range(2, last + 1)] or [by_round[1]]
    split = {key: _mean([r["time_s"].get(key, 0.0) for r in timed])
             for key in sorted({k for r in timed for k in r["time_s"] if k != "eval"})}
    first_line = watch.line_unix.get(1)
    startup = None if first_line is None else \
        first_line - sum(by_round[1]["time_s"].values()) - run.launched_unix
    wall = None
    if last >= 3 and {1, last - 1} <= set(watch.line_unix):
        wall = (watch.line_unix[last - 1] - watch.line_unix[1]) / (last - 2)
    return {"s_per_round": _mean([round_seconds(r) for r in timed]), "split_s": split,
            "wall_s_per_round": wall, "startup_s": startup,
            "line_times_exact": all(watch.exact.values()),
            "train_loss": [by_round[r].get("train_loss") for r in sorted(by_round)],
            "compute_s": _mean([r.get("compute_s", 0.0) for r in timed]),
            "history_memory_mb": {k: max(r.get("memory_mb", {}).get(k, 0.0) for r in records)
                                  for k in ("driver_peak", "actor_peak")},
            "total_s": run.seconds, "memory": run.memory.to_json()}


# -- the plain loop -------------------------------------------------------------------------------------
def measure_plain_loop(scenario_path: Path, case_dir: Path, timeout_s: float,
                       threads: int = 2) -> dict[str, Any]:
    """The hand-written loop (:mod:`fedray.bench.plain_loop`) on the same scenario, measured the same way."""
    result_path = case_dir / "plain_loop.json"
    argv = [sys.executable, "-m", "fedray.bench.plain_loop", str(scenario_path), "--out", str(result_path),
            "--threads", str(threads)]
    run = run_measured(argv, case_dir / "plain_loop.log", timeout_s)
    if run.returncode != 0:
        raise _failed("the plain loop", run)
    result = json.loads(result_path.read_text(encoding="utf-8"))
    steady = result["round_s"][1:] or result["round_s"]
    startup = result["round1_start_unix"] - result["isolated_total_s"] - run.launched_unix
    return {"s_per_round": _mean(steady), "startup_s": startup,
            "train_loss": result["train_loss"], "threads": result["threads"],
            "isolated_fit_s": result["isolated_fit_median_s"], "isolated_fits_s": result["isolated_fit_s"],
            "isolated_threads": result["isolated_threads"],
            "clients_tensorised": result["clients_tensorised"],
            "total_s": run.seconds, "memory": run.memory.to_json()}


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")
