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
