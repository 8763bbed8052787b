"""``fedray validate`` on sweep files and GPU requests; the top-level ``--help`` and ``--version``."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedray.cli import validate as validate_cmd
from fedray.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
MINI = str(ROOT / "scenarios" / "mini.yaml")
SWEEP = str(ROOT / "tune_spaces" / "mini-asha.yaml")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def no_gpu_here(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(validate_cmd, "local_gpu_count", lambda: 0)


def test_a_sweep_file_is_checked_as_a_sweep(capsys, no_gpu_here):
    code, out, err = run_cli(capsys, "validate", SWEEP)
    assert code == 0, err
    assert out.startswith(f"ok: {SWEEP} is a valid sweep ('mini-asha': 8 trials of mini")
    assert "unknown key" not in out + err


def test_a_sweep_files_problems_are_the_sweeps(capsys, no_gpu_here):
    code, out, err = run_cli(capsys, "validate", SWEEP, "num_samples=0", "space.lora.rnk=[4, 8]")
    assert code == 2 and not out
    assert "num_samples: got 0" in err and "'lora.rnk' is not a scenario field" in err
    assert "lora.rank" in err  # the close match


def test_sweep_overrides_reach_its_trials(capsys, no_gpu_here):
    code, out, _ = run_cli(capsys, "validate", SWEEP, "overrides.resources.gpus_per_actor=0.5")
    assert code == 0
    assert "warning: resources.gpus_per_actor=0.5 asks for GPUs" in out


def test_gpus_without_a_gpu_or_a_cluster_warn_but_pass(capsys, no_gpu_here):
    code, out, _ = run_cli(capsys, "validate", MINI, "resources.gpus_per_actor=1")
    assert code == 0
    warning = out.splitlines()[1]
    assert warning.startswith("warning: resources.gpus_per_actor=1 asks for GPUs")
    assert "resources.gpus_per_actor=0" in warning and "resources.ray_address" in warning
    code, out, _ = run_cli(capsys, "validate", MINI)
    assert code == 0 and "warning" not in out  # a CPU scenario asks for nothing


def test_no_gpu_warning_with_a_cluster_address_or_a_local_gpu(monkeypatch, capsys, no_gpu_here):
    cpu_only = [{"gpus_per_actor": 1.0, "ray_address": "10.0.0.1:6379"}]
    assert validate_cmd.gpu_warnings(cpu_only) == []
    assert validate_cmd.gpu_warnings([{"gpus_per_actor": 1.0}], gpus_here=1) == []
    assert len(validate_cmd.gpu_warnings([{"gpus_per_actor": 1.0}])) == 1
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert validate_cmd.gpu_warnings([{"gpus_per_actor": 1.0}]) == []


def test_local_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert validate_cmd.local_gpu_count() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3")
    assert validate_cmd.local_gpu_count() == 2


def test_the_gpu_check_imports_no_torch():
    source = Path(validate_cmd.__file__).read_text(encoding="utf-8")
    assert "import torch" not in source and "torch.cuda" not in source


def test_sweep_files_are_told_apart_from_scenarios(tmp_path):
    assert validate_cmd.is_sweep_file(SWEEP) and not validate_cmd.is_sweep_file(MINI)
    bare = tmp_path / "space-only.yaml"
    bare.write_text("space: {train.lr: [0.1, 0.01]}\n")
    assert validate_cmd.is_sweep_file(bare)


def test_top_level_help_is_for_users(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "one module per subcommand" not in out  # not the developer docstring
    assert "quick start:" in out and "fedray run scenarios/mini.yaml" in out
    for command in ("run", "validate", "config", "data", "tune", "report"):
        assert f"\n    {command} " in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("fedray ") and out.split()[1][0].isdigit()


def test_config_show_resolves_a_sweep_and_its_base_scenario(capsys):
    from fedray.config.yamlio import parse_yaml

    code, out, err = run_cli(capsys, "config", "show", SWEEP, "num_samples=3")
    assert code == 0, err
    assert out.splitlines()[0].startswith("# sweep 'mini-asha' from") and "(3 trials)" in out.splitlines()[0]
    resolved = parse_yaml(out)  # the base scenarios are comments: the output is a sweep file
    assert resolved["num_samples"] == 3 and resolved["scheduler"]["max_t"] is None  # a default
    assert "# base scenario 'mini' with the sweep's overrides" in out
    assert "#   federation:" in out and "#     rounds: 6" in out  # the sweep's override applied
