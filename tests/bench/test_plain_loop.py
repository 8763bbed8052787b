"""The plain loop does fedray's work: the same batches, the same FedAvg."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.bench.plain_loop import client_batches, fedavg, stack_batch, tensorise
from fedray.config.schema import ModelConfig, TrainConfig
from fedray.strategies import ClientResult, build_strategy


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a.lora_A.weight": torch.randn(4, 3, generator=g), "b.weight": torch.randn(5, generator=g)}


def test_fedavg_round_equals_the_fedavg_strategy():
    states, sizes = [_state(s) for s in range(3)], [12, 5, 30]
    results = [ClientResult(client_id=c, num_examples=n, params=p)
               for c, (p, n) in enumerate(zip(states, sizes))]
    expected, _ = build_strategy("fedavg").aggregate_fit(1, _state(99), results, [])
    ours = fedavg(states, sizes)
    assert set(ours) == set(expected)
    for key in expected:
        torch.testing.assert_close(ours[key], expected[key], rtol=1e-6, atol=1e-7)
    by_hand = (12 * states[0]["b.weight"] + 5 * states[1]["b.weight"] + 30 * states[2]["b.weight"]) / 47
    torch.testing.assert_close(ours["b.weight"], by_hand)


@pytest.fixture(scope="module")
def collator():
    from fedray.models.base import build_model
    from fedray.models.collate import Collator

    return Collator(build_model(ModelConfig()).processor, max_length=256)


def _rows():
    from fedray.data.sources import read_source

    rows = read_source("digits").splits["train"].slice(0, 6).to_pylist()
    rows[1]["answer"] = "a much longer answer than one digit word"  # rows of different token lengths
    rows[4]["image"] = None  # and one without an image
    return rows


def test_stacked_pretensorised_samples_equal_the_collators_batch(collator):
    rows = _rows()
    samples = tensorise(collator, rows)
    for idx in ([0, 1, 2], [3, 4, 5, 1], [4]):
        expected = collator.train_batch([rows[i] for i in idx])
        got = stack_batch([samples[i] for i in idx], collator.pad_id)
        assert set(got) == set(expected)
        for key in expected:
            assert torch.equal(got[key], expected[key]), key


def test_client_batches_follow_the_fit_seed(collator):
    from fedray.client.train import batch_indices
    from fedray.seeding import derive_rng, derive_seed

    rows = _rows()
    samples = tensorise(collator, rows)
    cfg = TrainConfig(local_steps=3, batch_size=4)
    batches = client_batches(samples, cfg, seed=7, server_round=2, client=5, pad_id=collator.pad_id)
    rng = derive_rng(derive_seed(7, "fit", 2, 5), "batches")
    expected = [collator.train_batch([rows[i] for i in idx]) for idx in batch_indices(6, 4, 3, rng)]
    assert len(batches) == 3
    for got, want in zip(batches, expected):
        assert torch.equal(got["labels"], want["labels"])
        assert np.array_equal(got["pixel_values"].numpy(), want["pixel_values"].numpy())
