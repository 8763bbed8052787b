"""benchmarks/gpu_check.sh stays runnable without a GPU: it parses, refuses clearly, and its scenarios and
random stand-in model build on the CPU."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses resolve their annotations through sys.modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


def test_the_shell_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: the check would run")
def test_without_a_gpu_it_stops_at_once_and_says_why():
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert done.returncode == 2
    assert "no GPU visible" in done.stderr and "--dry-run" in done.stderr


def test_dry_run_validates_every_configuration(gpu_check, tmp_path, capsys):
    assert gpu_check.main(["--dry-run", "--gpus", "2", "--out", str(tmp_path)]) == 0
    names = sorted(p.stem for p in tmp_path.glob("*.yaml"))
    assert names == sorted(["torch-1", "torch-2", "torch-4", "zero2-1", "zero2-2", "zero3-1", "zero3-2",
                            "zero2-group2", "zero3-group2"])
    assert "9 scenarios valid" in capsys.readouterr().out
    one_gpu = {c.name: c for c in gpu_check.configurations(1)}
    assert "zero2-group2" not in one_gpu  # a two-rank nccl group needs two GPUs
    assert [one_gpu[f"torch-{n}"].gpus_per_actor for n in (1, 2, 4)] == [1.0, 0.5, 0.25]


def test_the_random_stand_in_loads_as_the_assembled_model(gpu_check, tmp_path, monkeypatch):
    from fedray.config.schema import AssembledConfig, ModelConfig
    from fedray.models.base import build_model

    small = dict(gpu_check.SMOLLM2_135M, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=2048)
    monkeypatch.setattr(gpu_check, "SMOLLM2_135M", small)  # the architecture's shape, made small
    lm, vision = gpu_check.write_standin(tmp_path)
    cfg = ModelConfig(name="assembled", max_length=64, assembled=AssembledConfig(
        language_model=str(lm), vision_weights=str(vision), image_size=64, projector_hidden=16))
    built = build_model(cfg)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which?"}]}]
    prompt = built.processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert built.model.language_model.config.num_hidden_layers == 1
