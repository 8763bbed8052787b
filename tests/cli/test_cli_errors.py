"""Bad input gives one clear message, a non-zero exit and no traceback (unless --debug)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedray.cli.main import main

MINI = str(Path(__file__).resolve().parents[2] / "scenarios" / "mini.yaml")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_missing_scenario_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "does not exist" in err and "nope.yaml" in err
    assert "Traceback" not in err


def test_unknown_model_and_strategy_names_are_reported_together(capsys):
    code, _, err = run_cli(capsys, "validate", MINI, "model.name=tiny-vln", "strategy.name=fedavgg")
    assert code == 2
    assert "model.name" in err and "tiny-vlm" in err  # names the known builder
    assert "fedavgg" in err and "fedavg" in err
    assert "2 problem(s)" in err


def test_data_path_that_does_not_exist(capsys, tmp_path):
    missing = tmp_path / "no-such-dir"
    code, _, err = run_cli(capsys, "validate", MINI, f"data.root={missing}")
    assert code == 2 and "data.root" in err and str(missing) in err


def test_more_clients_than_samples_fails_before_starting_ray(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", MINI, "partition.num_clients=200", "federation.clients_per_round=4",
                           "data.max_train_samples=100", f"output.root={tmp_path}")
    assert code == 2
    assert "partition.num_clients" in err and "min_client_size" in err
    assert "Traceback" not in err
    run_dirs = list(tmp_path.iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "config.yaml").is_file()  # nothing lost


def test_debug_flag_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        main(["--debug", "validate", str(tmp_path / "nope.yaml")])


def test_validate_accepts_the_shipped_mini_scenario(capsys):
    code, out, _ = run_cli(capsys, "validate", MINI)
    assert code == 0 and "valid" in out


def test_console_entry_point_exits_non_zero_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fedray", "validate", str(tmp_path / "x.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


# --- issue 14: every input failure is one message, exit 2, no traceback --------------------------------


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_cluster_fails_fast_with_the_field(capsys, tmp_path):
    import time

    start = time.monotonic()
    code, _, err = run_cli(capsys, "run", MINI, f"output.root={tmp_path}", "federation.rounds=1",
                           f"resources.ray_address=127.0.0.1:{closed_port()}")
    assert code == 2 and "cannot be reached" in err and "resources.ray_address" in err
    assert time.monotonic() - start < 120  # Ray alone would retry for minutes; this is not a timing test
    assert "Traceback" not in err


def test_require_reachable_names_address_and_timeout():
    from fedray.engine.runtime import require_reachable
    from fedray.errors import SchedulingError

    address = f"127.0.0.1:{closed_port()}"
    with pytest.raises(SchedulingError, match=f"{address}.*waited up to 5 s"):
        require_reachable(address, timeout_s=5)
    require_reachable("auto")  # not host:port: left to Ray


def test_run_dir_that_is_a_file_is_refused_before_writing(capsys, tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("keep me")
    code, _, err = run_cli(capsys, "run", MINI, f"output.root={tmp_path}", "--run-dir", str(blocker))
    assert code == 2 and "--run-dir" in err and "is a file" in err
    assert blocker.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize("override, words", [
    ("name=../../../somewhere", "not a plain file name"),
    ("name=" + "n" * 300, "over the 150-byte limit"),
    ("output.root=/proc/fedray-runs", "kernel file system"),
])
def test_run_names_and_roots_that_would_escape_or_fail(capsys, tmp_path, override, words):
    code, _, err = run_cli(capsys, "run", MINI, f"output.root={tmp_path}", override)
    assert code == 2 and words in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def write_run(run_dir: Path, config: str, history: str) -> Path:
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(config)
    (run_dir / "history.jsonl").write_text(history)
    return run_dir


GOOD_LINE = '{"round": 0, "eval": {"accuracy": 0.5}}\n'


@pytest.mark.parametrize("config, history, words", [
    ("name: r\n", GOOD_LINE + "garbage{\n" + GOOD_LINE, "history.jsonl line 2 is not a JSON round record"),
    ("name: r\n", GOOD_LINE + '{"round": 1, "ev', "line 2 is not a JSON round record (it is the last line"),
    ("name: r\n", GOOD_LINE + "[1, 2]\n", "line 2 is not a round record"),
    ("name: [unclosed\n", GOOD_LINE, "config.yaml"),
    ("- a list\n", GOOD_LINE, "config.yaml"),
])
def test_report_names_the_unreadable_run_file(capsys, tmp_path, config, history, words):
    run_dir = write_run(tmp_path / "run", config, history)
    code, _, err = run_cli(capsys, "report", str(run_dir), "--out", str(tmp_path / "out"))
    assert code == 2 and words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data", ["name: x\n".encode("utf-16"), bytes(range(256))])
def test_unreadable_scenario_in_every_command(capsys, tmp_path, data):
    path = tmp_path / "s.yaml"
    path.write_bytes(data)
    for argv in (["validate", str(path)], ["data", "inspect", str(path), "--plot", "none"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and str(path) in err and "UTF" in err and "Traceback" not in err
