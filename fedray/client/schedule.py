"""Round-level learning-rate schedules: the base lr of each round's fits, before the per-fit schedule.

``cosine_warm`` is the FedMLLM reference's: with ``w = total_rounds × warmup_fraction`` and the 0-based
round ``r = server_round − 1``,

    lr_r = base · (r + 1) / w                                              if r < w
    lr_r = eta_min + (base − eta_min) · (1 + cos(π · (r − w) / (total − w))) / 2   otherwise

With the reference's 50 rounds and 1 % warmup, w = 0.5, so round 1 trains at **2 × base** (its quirk,
kept by ``warmup: reference``). ``warmup: corrected`` counts warmup in whole rounds, ⌈w⌉, so no round
exceeds ``base``. The per-fit schedule (``train.lr_schedule``, ``warmup_ratio``) then runs from the
round's lr within each fit. A pure function of the round: a resumed run gets the same lr.
"""

from __future__ import annotations

import math
from dataclasses import replace

from fedray.config.schema import RoundScheduleConfig, TrainConfig


def round_lr(base: float, server_round: int, total_rounds: int, cfg: RoundScheduleConfig) -> float:
    """The base learning rate of ``server_round`` (1-based) of ``total_rounds``."""
    if cfg.name == "constant":
        return base
    r = server_round - 1
    warmup = total_rounds * cfg.warmup_fraction
    if cfg.warmup == "corrected":
        warmup = float(math.ceil(warmup))
    if r < warmup:
        return base * (r + 1) / warmup
    progress = (r - warmup) / max(total_rounds - warmup, 1e-12)
    return cfg.eta_min + (base - cfg.eta_min) * (1.0 + math.cos(math.pi * progress)) / 2.0


def train_for_round(train: TrainConfig, server_round: int, total_rounds: int) -> TrainConfig:
    """``train`` with the round's lr (unchanged, the same object, under the constant schedule)."""
    if train.round_schedule.name == "constant":
        return train
    return replace(train, lr=round_lr(train.lr, server_round, total_rounds, train.round_schedule))
