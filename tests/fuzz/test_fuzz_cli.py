"""Property tests of the error contract (issue 14): whatever is done to a shipped scenario or a dataset row,
the CLI ends with exit code 0 or 2, never a traceback, never a hang, and writes nothing when it refuses.

The CLI entry (``fedray.cli.main.main``) is called in-process for speed, and through ``python -m fedray``
for a few cases. The default profile is small and derandomized (the same examples every run); the
``slow``-marked deep variants draw many more, at random: ``pytest -m slow tests/fuzz``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedray.cli.main import main
from fedray.config.paths import field_paths, set_paths
from fedray.config.yamlio import dump_yaml, parse_yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (REPO / "scenarios").rglob("*.yaml"))
#: Longest any one example may take before it counts as a hang (a guard, not a timing assertion).
HANG_S = 60
FAST = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
DEEP = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# -- the contract ------------------------------------------------------------------------------------

@contextlib.contextmanager
def hang_guard(seconds: int = HANG_S) -> Iterator[None]:
    """Fail the example (instead of blocking the suite) if it runs past ``seconds``."""
    def expire(signum, frame):
        raise AssertionError(f"the CLI was still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def cli(*argv: str) -> tuple[int, str]:
    """Exit code and stderr of ``fedray ARGV``; any exception that escapes is a contract breach."""
    err = io.StringIO()
    with hang_guard(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own refusal (an override that starts with "-"): exit 2
            code = exc.code
    return code, err.getvalue()


def assert_contract(code: int, err: str) -> None:
    assert code in (0, 2), f"exit code {code}: {err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]
    if code == 2:  # one message: fedray's "error: ...", or argparse's usage line and "fedray: error: ..."
        assert "error: " in err and err.strip() != "error:", err


# -- shipped scenarios, mutated ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def env_roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FEDRAY_DATA / FEDRAY_MODEL pointing at empty folders, so shipped scenarios validate offline."""
    root = tmp_path_factory.mktemp("fedray-env")
    for path in SHIPPED:
        for sub in re.findall(r"\$\{FEDRAY_DATA\}/([\w.-]+)", path.read_text()):
            (root / sub).mkdir(exist_ok=True)
    return root


@pytest.fixture(autouse=True)
def _env(env_roots: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDRAY_DATA", str(env_roots))
    monkeypatch.setenv("FEDRAY_MODEL", str(env_roots))


LEAVES = field_paths()
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(min_value=-2, max_value=2), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from(["../../x", "/proc/x", "${HOME}", "${SECRET_X}", "${FEDRAY_NOPE}", "1e12", ".inf",
                     "abc", "n" * 300, "fedadam", "127.0.0.1:1", "\x00", "a/b", "[1, 2", "*x"]),
)
FIELD_EDITS = st.lists(st.tuples(st.sampled_from(LEAVES), VALUES), min_size=1, max_size=3)
BYTE_EDITS = st.lists(st.tuples(st.integers(min_value=0, max_value=10**6),
                                st.integers(min_value=0, max_value=8), st.binary(max_size=8)),
                      min_size=1, max_size=4)


def edited_fields(text: str, edits: list[tuple[str, Any]]) -> str:
    raw = parse_yaml(text)
    return dump_yaml(set_paths(raw, dict(edits)))


def edited_bytes(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, cut, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + cut:]
    return data


def check_scenario(tmp: Path, data: bytes, overrides: list[str] = ()) -> None:
    """validate and run both keep the contract; a run that validate refuses writes nothing.

    Both see the same ``output.root`` override (where the run would write): an edit of that field is
    replaced by it for both, so a scenario validate refuses is the scenario the run gets."""
    path = tmp / "scenario.yaml"
    path.write_bytes(data)
    out = tmp / "runs"
    code, err = cli("validate", str(path), *overrides, f"output.root={out}")
    assert_contract(code, err)
    if code == 2:
        run_code, run_err = cli("run", str(path), *overrides, f"output.root={out}")
        assert_contract(run_code, run_err)
        assert run_code == 2 and not out.exists(), "a refused run wrote into output.root"


def scenario_fields_property(shipped: Path, edits: list[tuple[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_scenario(Path(tmp), edited_fields(shipped.read_text(), edits).encode("utf-8"))


def scenario_bytes_property(shipped: Path, edits: list[tuple[int, int, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_scenario(Path(tmp), edited_bytes(shipped.read_bytes(), edits))


def overrides_property(shipped: Path, overrides: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_scenario(Path(tmp), shipped.read_bytes(), overrides)


OVERRIDES = st.lists(st.one_of(
    st.builds(lambda p, v: f"{p}={v}", st.sampled_from(LEAVES), st.text(max_size=10)),
    st.text(max_size=15)), min_size=1, max_size=3)
SCENARIOS = st.sampled_from(SHIPPED)

test_mutated_scenario_fields = FAST(given(SCENARIOS, FIELD_EDITS)(scenario_fields_property))
test_mutated_scenario_bytes = FAST(given(SCENARIOS, BYTE_EDITS)(scenario_bytes_property))
test_random_overrides = FAST(given(SCENARIOS, OVERRIDES)(overrides_property))
#: The deep variants: many random examples, out of the default run (``pytest -m slow tests/fuzz``).
deep = pytest.mark.slow(pytest.mark.timeout(3600))
test_mutated_scenario_fields_deep = deep(DEEP(given(SCENARIOS, FIELD_EDITS)(scenario_fields_property)))
test_mutated_scenario_bytes_deep = deep(DEEP(given(SCENARIOS, BYTE_EDITS)(scenario_bytes_property)))
test_random_overrides_deep = deep(DEEP(given(SCENARIOS, OVERRIDES)(overrides_property)))


# -- dataset rows, mutated ---------------------------------------------------------------------------

ROWS = [{"id": i, "img": "img/0.png", "label": i % 2, "text": f"meme {i}"} for i in range(8)]
ROW_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                               st.integers(), max_size=2),
    st.sampled_from(["img/0.png", "../../etc/hostname", "/etc/hostname", "img", "img/missing.png", ""]),
)
ROW_EDITS = st.lists(st.tuples(st.integers(min_value=0, max_value=len(ROWS) - 1),
                               st.sampled_from(["id", "img", "label", "text", "extra"]), ROW_VALUES),
                     min_size=1, max_size=4)


def memes_release(tmp: Path, train: bytes) -> Path:
    from PIL import Image

    root = tmp / "hm"
    (root / "img").mkdir(parents=True)
    Image.new("L", (8, 8)).save(root / "img" / "0.png")
    (root / "train.jsonl").write_bytes(train)
    (root / "test.jsonl").write_text("".join(json.dumps({**r, "id": 100 + r["id"]}) + "\n" for r in ROWS))
    scenario = (f"name: fuzz\ndata: {{source: hateful_memes, root: '{root}'}}\n"
                "partition: {name: iid, num_clients: 2, min_client_size: 1}\n"
                "federation: {rounds: 1, clients_per_round: 1}\n")
    path = tmp / "memes.yaml"
    path.write_text(scenario)
    return path


def rows_property(edits: list[tuple[int, str, Any]], line_edits: list[tuple[int, int, bytes]]) -> None:
    rows = [dict(r) for r in ROWS]
    for index, key, value in edits:
        rows[index][key] = value
    train = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")
    train = edited_bytes(train, line_edits) if line_edits else train
    with tempfile.TemporaryDirectory() as tmp:
        scenario = memes_release(Path(tmp), train)
        assert_contract(*cli("data", "inspect", str(scenario), "--plot", "none"))


LINE_EDITS = st.lists(st.tuples(st.integers(min_value=0, max_value=10**4),
                                st.integers(min_value=0, max_value=4), st.binary(max_size=6)), max_size=2)
test_mutated_dataset_rows = FAST(given(ROW_EDITS, LINE_EDITS)(rows_property))
test_mutated_dataset_rows_deep = deep(DEEP(given(ROW_EDITS, LINE_EDITS)(rows_property)))


# -- through the console entry point -----------------------------------------------------------------

def test_console_entry_keeps_the_contract_for_hostile_files(tmp_path: Path) -> None:
    """A few hostile inputs through ``python -m fedray``: exit 2, no traceback, in bounded time."""
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    scenario = memes_release(tmp_path, b'{"id": 1, "img": "img/0.png", "label": 0, "text": "\xff"}\n')
    commands = (["validate", str(tmp_path / "bomb.yaml")],
                ["data", "inspect", str(scenario), "--plot", "none"])
    for argv in commands:
        proc = subprocess.run([sys.executable, "-m", "fedray", *argv], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "bomb.yaml" in proc.stderr or "train.jsonl line 1" in proc.stderr
