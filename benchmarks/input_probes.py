"""Re-run the careless/hostile-user probe list of issue 14 against the CLI and print the table.

Each probe writes what it needs into a fresh temporary directory, runs ``python -m fedray ...`` there in a
subprocess with a time limit, and is classed by the error contract:

- ``clear``: exit code 2, no traceback, and the message names what the probe expects (file, row, field);
- ``traceback``: a traceback on stderr, or an exit code other than 0/2, or exit 2 without the expected name;
- ``hang``: still running at the time limit;
- ``accepted``: exit 0 where the input is certainly a mistake.

    PYTHONPATH=. python benchmarks/input_probes.py [--only NAME] [--timeout 60]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "scenarios" / "mini.yaml"
#: Overrides that keep an accidental run of the mini scenario short.
QUICK = ["federation.rounds=1", "data.max_train_samples=200", "data.max_test_samples=20",
         "eval.at_start=false", "train.local_steps=1"]


@dataclass
class Probe:
    name: str
    argv: Callable[[Path], list[str]]  # the fedray arguments, given the probe's temporary directory
    expect: str = ""  # a word the error must contain (a file name, a field path)
    env: dict[str, str] = field(default_factory=dict)


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def png(width: int, height: int, color: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def memes(tmp: Path, train: list[dict] | bytes | None = None, test: list[dict] | None = None,
          image: bytes | None = None) -> Path:
    """A tiny hateful_memes layout under ``tmp/hm`` and a scenario over it; returns the scenario path."""
    root = tmp / "hm"
    write(root / "img" / "0.png", png(8, 8))
    if image is not None:
        write(root / "img" / "big.png", image)
    rows = [{"id": i, "img": "img/0.png", "label": i % 2, "text": f"meme {i}"} for i in range(12)]
    data = train if train is not None else rows
    if isinstance(data, bytes):
        write(root / "train.jsonl", data)
    else:
        write(root / "train.jsonl", "".join(json.dumps(r) + "\n" for r in data))
    tests = test if test is not None else [{**r, "id": 100 + i} for i, r in enumerate(rows[:4])]
    write(root / "test.jsonl", "".join(json.dumps(r) + "\n" for r in tests))
    scenario = (f"name: probe\ndata: {{source: hateful_memes, root: '{root}'}}\n"
                "partition: {name: iid, num_clients: 2, min_client_size: 1}\n"
                "federation: {rounds: 1, clients_per_round: 1}\n"
                f"output: {{root: '{tmp / 'runs'}'}}\n")
    return write(tmp / "memes.yaml", scenario)


def inspect(tmp: Path, **kw) -> list[str]:
    return ["data", "inspect", str(memes(tmp, **kw)), "--plot", "none"]


def bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\nname: bomb\n"


def history_run(tmp: Path, tail: str) -> list[str]:
    run = tmp / "run"
    write(run / "config.yaml", "name: r\nseed: 0\neval: {select_metric: accuracy}\n")
    good = json.dumps({"round": 0, "eval": {"accuracy": 0.5}})
    write(run / "history.jsonl", good + "\n" + tail)
    return ["report", str(run), "--out", str(tmp / "out")]


def bad_config_run(tmp: Path) -> list[str]:
    run = tmp / "run"
    write(run / "config.yaml", "name: [unclosed\n")
    write(run / "history.jsonl", json.dumps({"round": 0, "eval": {"accuracy": 0.5}}) + "\n")
    return ["report", str(run), "--out", str(tmp / "out")]


def run_mini(tmp: Path, *extra: str) -> list[str]:
    return ["run", str(MINI), *QUICK, f"output.root={tmp / 'runs'}", *extra]


def duplicated_rows() -> list[dict]:
    return [{"id": 1, "img": "img/0.png", "label": i % 2, "text": "x"} for i in range(12)]


PROBES: list[Probe] = [
    Probe("random-bytes scenario (validate)",
          lambda t: ["validate", str(write(t / "s.yaml", bytes(range(256)) * 4))], "s.yaml"),
    Probe("random-bytes scenario (data inspect)",
          lambda t: ["data", "inspect", str(write(t / "s.yaml", bytes(range(256)) * 4))], "s.yaml"),
    Probe("UTF-16 scenario (validate)",
          lambda t: ["validate", str(write(t / "s.yaml", MINI.read_text().encode("utf-16")))], "s.yaml"),
    Probe("UTF-16 scenario (data inspect)",
          lambda t: ["data", "inspect", str(write(t / "s.yaml", MINI.read_text().encode("utf-16")))],
          "s.yaml"),
    Probe("300-character name", lambda t: run_mini(t, "name=" + "n" * 300), "name"),
    Probe("output.root is a file", lambda t: run_mini(t, f"output.root={write(t / 'f', 'x')}"),
          "output.root"),
    Probe("output.root under /proc", lambda t: run_mini(t, "output.root=/proc/fedray-runs"), "output.root"),
    Probe("--run-dir an existing file", lambda t: run_mini(t, "--run-dir", str(write(t / "f", "x"))),
          "run-dir"),
    Probe("round_timeout_s .inf", lambda t: ["validate", str(MINI), "federation.round_timeout_s=.inf"],
          "round_timeout_s"),
    Probe("strategy.eta=abc", lambda t: ["validate", str(MINI), "strategy.name=fedadam", "strategy.eta=abc"],
          "strategy.eta"),
    Probe("train.jsonl with a \\xff byte",
          lambda t: inspect(t, train=b'{"id": 1, "img": "img/0.png", "label": 0, "text": "\xff"}\n'),
          "train.jsonl"),
    Probe("train.jsonl with a binary line", lambda t: inspect(t, train=bytes(range(256)) + b"\n"),
          "train.jsonl"),
    Probe("train.jsonl a directory",
          lambda t: (memes(t), (t / "hm" / "train.jsonl").unlink(), (t / "hm" / "train.jsonl").mkdir(),
                     ["data", "inspect", str(t / "memes.yaml"), "--plot", "none"])[-1], "train.jsonl"),
    Probe("20000x20000 PNG",
          lambda t: inspect(t, image=png(20000, 20000),
                            train=[{"id": i, "img": "img/big.png", "label": i % 2, "text": "x"}
                                   for i in range(12)]), "big.png"),
    Probe("text field holding a dict",
          lambda t: inspect(t, train=[{"id": i, "img": "img/0.png", "label": i % 2, "text": {"a": 1}}
                                      for i in range(12)]), "line 1"),
    Probe("garbage history.jsonl line (report)", lambda t: history_run(t, "garbage{\n"), "history.jsonl"),
    Probe("cut history.jsonl line (report)", lambda t: history_run(t, '{"round": 1, "ev'), "history.jsonl"),
    Probe("bad config.yaml (report)", bad_config_run, "config.yaml"),
    Probe("YAML alias bomb (validate)", lambda t: ["validate", str(write(t / "b.yaml", bomb()))], "b.yaml"),
    Probe("ray_address 127.0.0.1:1", lambda t: run_mini(t, "resources.ray_address=127.0.0.1:1"),
          "ray_address"),
    Probe("select_metric no eval produces", lambda t: ["validate", str(MINI), "eval.select_metric=acuracy"],
          "select_metric"),
    Probe("duplicate YAML keys",
          lambda t: ["validate", str(write(t / "d.yaml", "name: a\nseed: 1\nseed: 2\n"))], "seed"),
    Probe("rounds 1e12", lambda t: ["validate", str(MINI), "federation.rounds=1e12"], "federation.rounds"),
    Probe("rounds 1000000000000 (an integer)",
          lambda t: ["validate", str(MINI), "federation.rounds=1000000000000"], "federation.rounds"),
    Probe("torch_threads 1000000 (an integer)",
          lambda t: ["validate", str(MINI), "resources.torch_threads=1000000"], "torch_threads"),
    Probe("torch_threads 1e6", lambda t: ["validate", str(MINI), "resources.torch_threads=1e6"],
          "torch_threads"),
    Probe("name ../../../somewhere", lambda t: ["validate", str(MINI), "name=../../../somewhere"], "name"),
    Probe("image path outside data.root",
          lambda t: inspect(t, train=[{"id": i, "img": "../../../etc/hostname", "label": i % 2, "text": "x"}
                                      for i in range(12)]), "data.root"),
    Probe("empty test split", lambda t: inspect(t, test=[]), "test"),
    Probe("single-class train split",
          lambda t: inspect(t, train=[{"id": i, "img": "img/0.png", "label": 0, "text": "x"}
                                      for i in range(12)]), "class"),
    Probe("duplicate sample ids", lambda t: inspect(t, train=duplicated_rows()), "hateful_memes-1"),
    Probe("${VAR} of an arbitrary variable", lambda t: ["validate", str(MINI), "name=${SECRET_TOKEN}"],
          "SECRET_TOKEN", env={"SECRET_TOKEN": "hunter2"}),
]


def classify(proc: subprocess.CompletedProcess | None, expect: str) -> str:
    if proc is None:
        return "hang"
    if "Traceback" in proc.stderr or proc.returncode not in (0, 2):
        return "traceback"
    if proc.returncode == 0:
        return "accepted"
    return "clear" if expect.lower() in proc.stderr.lower() else "unclear"


def run_probe(probe: Probe, timeout: float) -> tuple[str, str, float]:
    with tempfile.TemporaryDirectory(prefix="fedray-probe-") as tmp_name:
        tmp = Path(tmp_name)
        argv = probe.argv(tmp)
        env = {**os.environ, "FEDRAY_CACHE": str(tmp / "cache"), **probe.env}
        start = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-m", "fedray", *argv], cwd=tmp, env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc = None
        elapsed = time.monotonic() - start
        verdict = classify(proc, probe.expect)
        last = "" if proc is None else (proc.stderr.strip().splitlines() or [""])[-1]
        return verdict, last[:160], elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="run only probes whose name contains this")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a probe is a hang")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each probe's last stderr line")
    args = parser.parse_args()
    counts: dict[str, int] = {}
    for probe in PROBES:
        if args.only and args.only not in probe.name:
            continue
        verdict, last, elapsed = run_probe(probe, args.timeout)
        counts[verdict] = counts.get(verdict, 0) + 1
        detail = f"\n           {last}" if args.verbose else ""
        print(f"{verdict:>9}  {elapsed:5.1f}s  {probe.name}{detail}", flush=True)
    tries = sum(counts.values())
    print(f"\ntries {tries} | clear errors {counts.get('clear', 0)} | unclear {counts.get('unclear', 0)} | "
          f"tracebacks {counts.get('traceback', 0)} | hangs {counts.get('hang', 0)} | "
          f"silently accepted {counts.get('accepted', 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
