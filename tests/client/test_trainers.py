"""The trainer registry: parameters checked on build, and DeepSpeed imported only when a fit needs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedray.client.deepspeed import DeepSpeedTrainer
from fedray.client.trainers import TorchTrainer, build_trainer
from fedray.config.schema import TrainEngineConfig
from fedray.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_build_trainer_feeds_and_checks_the_engine_parameters():
    trainer = build_trainer(TrainEngineConfig(name="deepspeed", options={"zero_stage": 3, "bf16": True}))
    assert isinstance(trainer, DeepSpeedTrainer)
    assert (trainer.params.zero_stage, trainer.params.bf16) == (3, True)
    with pytest.raises(ConfigError, match=r"train\.engine\.zero_stage: got 4, must be <= 3"):
        build_trainer(TrainEngineConfig(name="deepspeed", options={"zero_stage": 4}))
    with pytest.raises(ConfigError, match=r"train\.engine\.zero_stage: unknown key"):
        build_trainer(TrainEngineConfig(name="torch", options={"zero_stage": 2}))
    assert isinstance(build_trainer(TrainEngineConfig()), TorchTrainer)


def test_building_the_deepspeed_trainer_does_not_import_deepspeed():
    code = ("import sys, fedray; from fedray.client.trainers import build_trainer; "
            "from fedray.config.schema import TrainEngineConfig; "
            "build_trainer(TrainEngineConfig(name='deepspeed')); print('deepspeed' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
