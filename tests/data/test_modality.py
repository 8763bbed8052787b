"""Modality scenarios: exact assignments on small inputs, rates, determinism, the fedmllm reproduction."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fedray.config.schema import ModalityConfig
from fedray.data.modality import BOTH, IMAGE, NONE, TEXT, mask_rows, plan_modalities
from fedray.errors import DataError

IDS = [[f"s{c}-{i}" for i in range(40)] for c in range(10)]


def test_aligned_gives_every_sample_both() -> None:
    plan = plan_modalities(IDS, ModalityConfig(name="aligned"), seed=0)
    assert plan.client_masks == (BOTH,) * 10
    assert plan.masks_for(3, 40) == (BOTH,) * 40


def test_missing_rates_and_independence() -> None:
    ids = [[f"x{i}" for i in range(20_000)]]
    plan = plan_modalities(ids, ModalityConfig(name="missing", options={"missing_rate": 0.3}), 0)
    masks = np.array(plan.masks_for(0, 0))
    shares = {m: float(np.mean(masks == m)) for m in (BOTH, IMAGE, TEXT, NONE)}
    assert shares[BOTH] == pytest.approx(0.49, abs=0.015)
    assert shares[IMAGE] == pytest.approx(0.21, abs=0.015)
    assert shares[TEXT] == pytest.approx(0.21, abs=0.015)
    assert shares[NONE] == pytest.approx(0.09, abs=0.01)


def test_missing_fedray_mode_is_independent_of_client_order() -> None:
    cfg = ModalityConfig(name="missing", options={"missing_rate": 0.5})
    forward = plan_modalities(IDS, cfg, seed=3)
    backward = plan_modalities(IDS[::-1], cfg, seed=3)
    assert forward.sample_masks[0] == backward.sample_masks[9]
    assert forward.sample_masks != plan_modalities(IDS, cfg, seed=4).sample_masks


def test_missing_fedmllm_mode_follows_one_random_stream() -> None:
    ids = [["a", "b"], ["c"]]
    cfg = ModalityConfig(name="missing", options={"missing_rate": 0.5}, mode="fedmllm")
    plan = plan_modalities(ids, cfg, seed=42)
    stream = random.Random(42)
    expected = []
    for client in ids:
        row = []
        for _ in client:
            text_kept, image_kept = stream.random() >= 0.5, stream.random() >= 0.5
            row.append((TEXT if text_kept else NONE) | (IMAGE if image_kept else NONE))
        expected.append(tuple(row))
    assert plan.sample_masks == tuple(expected)


def test_cross_modal_fedmllm_matches_reference_sampling() -> None:
    for k in (3, 5, 7):
        cfg = ModalityConfig(name="cross_modal", options={"image_clients": k}, mode="fedmllm")
        plan = plan_modalities(IDS, cfg, 42)
        chosen = set(random.Random(42).sample(range(10), k))  # the reference: random.seed(42); sample
        assert plan.client_masks == tuple(IMAGE if c in chosen else TEXT for c in range(10))


def test_cross_modal_fedray_counts_and_errors() -> None:
    cfg = ModalityConfig(name="cross_modal", options={"image_clients": 3})
    plan = plan_modalities(IDS, cfg, seed=1)
    assert plan.client_masks.count(IMAGE) == 3 and plan.client_masks.count(TEXT) == 7
    assert plan == plan_modalities(IDS, cfg, seed=1)
    with pytest.raises(DataError, match="image_clients=11 exceeds the 10 clients"):
        plan_modalities(IDS, ModalityConfig(name="cross_modal", options={"image_clients": 11}), seed=1)


def test_hybrid_fedmllm_matches_reference_presence_matrix() -> None:
    q = 0.4
    cfg = ModalityConfig(name="hybrid", options={"absent_rate": q}, mode="fedmllm")
    plan = plan_modalities(IDS, cfg, seed=42)
    presence = np.random.RandomState(42).binomial(1, 1 - q, size=(10, 2))
    expected = tuple((IMAGE if img else NONE) | (TEXT if txt else NONE) for img, txt in presence)
    assert plan.client_masks == expected
    for client, mask in enumerate(expected):
        masks = plan.masks_for(client, 40)
        if mask == NONE:  # neither: a per-sample image-or-text mix
            assert set(masks) <= {IMAGE, TEXT} and len(set(masks)) == 2
        else:
            assert masks == (mask,) * 40 and plan.sample_masks[client] is None


def test_hybrid_neither_client_gets_a_mix() -> None:
    # q = 1: no client keeps either modality, so every client is a per-sample 50/50 mix.
    plan = plan_modalities(IDS, ModalityConfig(name="hybrid", options={"absent_rate": 1.0}), seed=0)
    assert plan.client_masks == (NONE,) * 10
    masks = np.array([m for c in range(10) for m in plan.masks_for(c, 40)])
    assert set(masks.tolist()) == {IMAGE, TEXT}
    assert float(np.mean(masks == IMAGE)) == pytest.approx(0.5, abs=0.08)


def test_mask_rows_removes_not_imputes() -> None:
    rows = [{"image": b"png", "text": "t"} for _ in range(4)]
    out = mask_rows(rows, [BOTH, IMAGE, TEXT, NONE])
    assert [(r["image"], r["text"]) for r in out] == [(b"png", "t"), (b"png", None), (None, "t"),
                                                      (None, None)]
    with pytest.raises(DataError, match="2 rows but 1 modality masks"):
        mask_rows([{}, {}], [BOTH])


def test_unknown_scenario_lists_known() -> None:
    with pytest.raises(Exception, match="aligned.*cross_modal.*hybrid.*missing"):
        plan_modalities(IDS, ModalityConfig(name="partial"), seed=0)
