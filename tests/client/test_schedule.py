"""The round-level cosine schedule against the reference's formula, its round-1 quirk and the fix."""

import math

import pytest

from fedray.client.schedule import round_lr, train_for_round
from fedray.config import scenario_from_dict
from fedray.config.schema import RoundScheduleConfig, TrainConfig

COSINE = RoundScheduleConfig(name="cosine_warm", warmup_fraction=0.01, eta_min=0.0)


def test_reference_quirk_round_one_trains_at_twice_the_base_lr():
    # 50 rounds × 1 % = 0.5 warmup rounds: r = 0 < 0.5 → lr = 2e-5 · 1 / 0.5 = 4e-5
    assert round_lr(2e-5, 1, 50, COSINE) == pytest.approx(4e-5)
    # r = 1: cosine from the warmup's end: 2e-5 · (1 + cos(π · 0.5 / 49.5)) / 2
    assert round_lr(2e-5, 2, 50, COSINE) == pytest.approx(2e-5 * (1 + math.cos(math.pi * 0.5 / 49.5)) / 2)
    # the last round, r = 49: close to 0
    assert round_lr(2e-5, 50, 50, COSINE) == pytest.approx(2e-5 * (1 + math.cos(math.pi * 48.5 / 49.5)) / 2)
    assert round_lr(2e-5, 50, 50, COSINE) < 3e-8  # ≈ 2.0e-8


def test_corrected_warmup_counts_whole_rounds_and_never_exceeds_the_base():
    corrected = RoundScheduleConfig(name="cosine_warm", warmup_fraction=0.01, warmup="corrected")
    lrs = [round_lr(1.0, r, 50, corrected) for r in range(1, 51)]
    assert lrs[0] == 1.0 and max(lrs) == 1.0  # ⌈0.5⌉ = 1 warmup round: lr 1 · 1/1
    ten = RoundScheduleConfig(name="cosine_warm", warmup_fraction=0.1, warmup="corrected", eta_min=0.1)
    assert [round_lr(1.0, r, 30, ten) for r in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert round_lr(1.0, 30, 30, ten) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 26 / 27)) / 2)


def test_constant_keeps_the_train_config_and_the_section_loads():
    train = TrainConfig(lr=1e-3)
    assert train_for_round(train, 7, 10) is train
    s = scenario_from_dict({"train": {"lr": 0.01, "round_schedule": {"name": "cosine_warm"}},
                            "federation": {"rounds": 50}})
    assert train_for_round(s.train, 1, 50).lr == pytest.approx(0.02)
    with pytest.raises(Exception, match="train.round_schedule.warmup_fraction: got 1.5, must be < 1"):
        scenario_from_dict({"train": {"round_schedule": {"name": "cosine_warm", "warmup_fraction": 1.5}}})
