"""Linear rules fold a round's results in one at a time (as the engine streams them) and get exactly the
bits of aggregating them all at once; when the round turns out other than expected (a failure, a
rejected result, another sample count) the fold is dropped and nothing of it leaks into the server state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.client.objectives import CONTROL_DELTA
from fedray.flat import FlatState
from fedray.strategies import STRATEGIES, ClientFailure, ClientResult, build_strategy
from fedray.strategies.base import RoundAggregation, Strategy
from fedray.strategies.updates import MeanFold, pseudo_gradient, weighted_mean
from tests.strategies.test_state_roundtrip import CASES, _global, _results

LINEAR_CASES = [(name, params) for name, params in CASES if STRATEGIES.get(name).linear] + \
    [("scaffold", {"server_lr": 0.5})]


def _old_weighted_mean(states, weights):
    """The sums as they were written before the fold (float64, then cast), kept to pin the arithmetic."""
    total = float(sum(weights))
    out = {}
    for key, first in states[0].items():
        acc = torch.zeros_like(first, dtype=torch.float64)
        for state, weight in zip(states, weights):
            acc += state[key].to(torch.float64) * (weight / total)
        out[key] = acc.to(first.dtype)
    return out


def _old_pseudo_gradient(global_state, results, weighted):
    weights = [float(r.num_examples) if weighted else 1.0 for r in results]
    total = sum(weights)
    delta = {}
    for key, x in global_state.items():
        x64 = x.to(torch.float64)
        acc = torch.zeros_like(x64)
        for result, weight in zip(results, weights):
            acc += (result.params[key].to(torch.float64) - x64) * (weight / total)
        delta[key] = acc.to(torch.promote_types(x.dtype, torch.float32))
    return delta


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_the_fold_is_the_old_arithmetic_bit_for_bit(dtype):
    generator = torch.Generator().manual_seed(0)
    x = {"a": torch.randn(4, 5, generator=generator).to(dtype),
         "b": torch.randn(7, generator=generator).to(dtype)}
    results = [ClientResult(c, 3 + 7 * c, {k: v + 0.01 * torch.randn(v.shape, generator=generator).to(dtype)
                                           for k, v in x.items()}) for c in range(6)]
    states, weights = [r.params for r in results], [r.num_examples for r in results]
    for got, expected in [(weighted_mean(states, weights), _old_weighted_mean(states, weights)),
                          (pseudo_gradient(x, results, True), _old_pseudo_gradient(x, results, True)),
                          (pseudo_gradient(x, results, False), _old_pseudo_gradient(x, results, False))]:
        assert list(got) == list(expected)
        assert all(got[k].dtype == expected[k].dtype and torch.equal(got[k], expected[k]) for k in got)


def _with_variates(strategy: Strategy, x, server_round, results):
    """SCAFFOLD's results carry control deltas; its server half needs configure_fit first."""
    if strategy.name != "scaffold":
        return results
    strategy.configure_fit(server_round, [r.client_id for r in results], x)
    return [ClientResult(r.client_id, r.num_examples, r.params,
                         extras={CONTROL_DELTA: {k: 0.1 * (v - x[k]) for k, v in r.params.items()}})
            for r in results]


def _streamed(strategy, server_round, x, results, expected, failures=()):
    round_ = RoundAggregation(strategy, server_round, x, expected)
    for result in results:
        round_.add(result)
    return round_.close(list(failures))


def _equal(a, b):
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


LINEAR_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(LINEAR_CASES)]


@pytest.mark.parametrize("name, params", LINEAR_CASES, ids=LINEAR_IDS)
def test_streamed_rounds_equal_gathered_ones_and_a_failed_bet_leaks_nothing(name, params):
    folded = build_strategy(name, params, num_clients=8)
    gathered = build_strategy(name, params, num_clients=8)
    assert folded.accumulate(1, _global(), [1]) is not None
    x_folded = x_gathered = _global()
    for server_round in (1, 2, 3):
        results = _with_variates(folded, x_folded, server_round, _results(x_folded, server_round))
        _with_variates(gathered, x_gathered, server_round, results)
        if server_round == 2:  # client 2 fails after the round was opened expecting it
            expected = [(r.client_id, r.num_examples) for r in results]
            failures = [ClientFailure(2, "timed out")]
            results = [r for r in results if r.client_id != 2]
            new_f, metrics_f = _streamed(folded, server_round, x_folded, results, expected, failures)
            new_g, metrics_g = gathered.aggregate_fit(server_round, x_gathered, results, failures)
        else:
            expected = [(r.client_id, r.num_examples) for r in results]
            new_f, metrics_f = _streamed(folded, server_round, x_folded, results, expected)
            new_g, metrics_g = gathered.aggregate(server_round, x_gathered, results)
            metrics_g = {"num_results": 5.0, "num_failures": 0.0, "num_rejected": 0.0, **metrics_g}
        assert _equal(new_f, new_g) and metrics_f == metrics_g
        x_folded, x_gathered = new_f, new_g


def test_a_rejected_result_or_another_count_drops_the_fold():
    x = _global()
    results = _results(x, 1)
    nan = {k: v * float("nan") for k, v in results[1].params.items()}
    bad = ClientResult(1, results[1].num_examples, nan)
    expected = [(r.client_id, r.num_examples) for r in results]
    cases = {"rejected": [results[0], bad, *results[2:]],
             "recounted": [ClientResult(r.client_id, r.num_examples + (r.client_id == 3), r.params)
                           for r in results]}
    for label, arrived in cases.items():
        strategy, reference = build_strategy("fedadam", {"eta": 0.1}), build_strategy("fedadam", {"eta": 0.1})
        got, metrics = _streamed(strategy, 1, x, arrived, expected)
        want, want_metrics = reference.aggregate_fit(1, x, arrived, [])
        assert _equal(got, want) and metrics == want_metrics, label
        assert strategy.t == reference.t == 1


def test_the_fold_leaves_the_server_state_alone_until_it_finishes():
    strategy, x = build_strategy("fedavgm", {"momentum": 0.5}), _global()
    fold = strategy.accumulate(1, x, [10, 15])
    for result in _results(x, 1, count=2):
        fold.add(result)
    assert strategy.velocity is None
    fold.finish()
    assert strategy.velocity is not None


def test_the_linear_rules_built_here_accumulate_and_the_robust_ones_do_not():
    for name in STRATEGIES.names():
        if not name.startswith("example_"):  # the architecture doc's example aggregates at once
            strategy = build_strategy(name)
            assert (strategy.accumulate(1, _global(), [1, 2]) is not None) == type(strategy).linear, name


def test_mean_fold_refuses_more_states_than_weights():
    fold = MeanFold([1.0])
    fold.add({"w": torch.zeros(1)})
    with pytest.raises(ValueError, match="beyond"):
        fold.add({"w": torch.zeros(1)})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64, torch.bfloat16])
def test_flat_buffers_are_added_at_once_with_the_same_bits(dtype):
    generator = torch.Generator().manual_seed(1)
    x = {"a": torch.randn(3, 5, generator=generator).to(dtype),
         "b": torch.randn(7, generator=generator).to(dtype)}
    params = [{k: v + 0.1 * torch.randn(v.shape, generator=generator).to(dtype) for k, v in x.items()}
              for _ in range(4)]
    weights = [5, 1, 3, 8]
    flat_x = FlatState.pack(x)
    for center, as_input in [(None, lambda p: p), (x, lambda p: p)]:
        dict_fold = MeanFold(weights, center)
        flat_fold = MeanFold(weights, None if center is None else flat_x)
        for p in params:
            dict_fold.add(as_input(p))
            flat_fold.add(FlatState.pack(p, flat_x.layout))
        assert flat_fold._flat is not None and dict_fold._flat is None
        got, want = (flat_fold.mean(), dict_fold.mean()) if center is None else \
            (flat_fold.update(), dict_fold.update())
        assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in got)


def test_a_non_finite_flat_buffer_still_names_its_tensors():
    from fedray.strategies import filter_finite

    flat = FlatState.pack({"a": torch.ones(3), "b": torch.tensor([1.0, float("inf")])})
    good, rejected = filter_finite([ClientResult(0, 1, flat)])
    assert good == [] and rejected[0].reason.endswith("values in b")


def _torch_flat_fold(states, weights, center=None):
    """The whole-buffer fold as torch computes it (the arithmetic before numpy took it over): widen to
    float64, subtract the center, multiply by the share, add; cast back with ``.to``."""
    total = float(sum(weights))
    acc = torch.zeros(states[0].typed().numel(), dtype=torch.float64)
    center64 = None if center is None else center.typed().to(torch.float64)
    for state, weight in zip(states, weights):
        x = state.typed().to(torch.float64)
        acc += (x if center64 is None else x - center64) * (weight / total)
    return acc


def _random_flat(rng, layout, dtype, scale):
    values = (rng.standard_normal(layout.nbytes // np.dtype(dtype).itemsize) * scale).astype(dtype)
    return FlatState.from_array(layout, values)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_the_numpy_fold_gives_the_torch_folds_bits(dtype):
    """Random buffers over a wide range of magnitudes (float16 subnormals and values near its largest
    included), with and without a center: the numpy sum and its cast back equal torch's bit for bit."""
    rng = np.random.default_rng(7)
    shapes = {"a": (33, 17), "b": (5,), "c": (2, 3, 4)}
    zeros = {key: torch.zeros(shape, dtype=getattr(torch, dtype)) for key, shape in shapes.items()}
    layout = FlatState.pack(zeros).layout
    for scale in (1e-6, 1.0, 1e4):
        states = [_random_flat(rng, layout, dtype, scale) for _ in range(7)]
        center = _random_flat(rng, layout, dtype, scale)
        weights = [float(w) for w in rng.integers(1, 50, size=len(states))]
        for with_center in (None, center):
            fold = MeanFold(weights, with_center)
            for state in states:
                fold.add(state)
            assert fold._flat.numpy
            want = _torch_flat_fold(states, weights, with_center)
            assert np.array_equal(fold._flat.acc.view(np.uint64), want.numpy().view(np.uint64))
            if with_center is None:
                got = fold.mean()
                assert isinstance(got, FlatState) and got.layout == layout
                assert np.array_equal(got.buffer, _cast_into(layout, want).buffer)
            else:
                delta = fold.update()
                for key, slot in zip(delta, layout.slots):
                    expected = want[layout.element(slot)].view(slot.shape).to(
                        torch.promote_types(slot.torch_dtype, torch.float32))
                    assert delta[key].dtype == expected.dtype
                    assert delta[key].numpy().tobytes() == expected.numpy().tobytes()


def _cast_into(layout, acc):
    flat = FlatState.empty(layout)
    flat.typed().copy_(acc.to(flat.typed().dtype))
    return flat


def test_float64_to_float16_rounds_as_torch_does():
    """torch casts a double to half through float (two roundings); near a half's rounding boundary
    that differs from numpy's direct cast, and cast_like_torch follows torch."""
    from fedray.strategies.updates import cast_like_torch

    rng = np.random.default_rng(3)
    halves = rng.standard_normal(20000).astype(np.float16)
    ulp = np.spacing(halves).astype(np.float64)
    near = halves.astype(np.float64) + ulp / 2 * (1 + rng.choice([-1.0, 1.0], halves.size) * 2.0**-30)
    values = np.concatenate([near, [np.inf, -np.inf, np.nan, 1e6, -1e6, 6e-8, 1e-9]])
    want = torch.from_numpy(values).to(torch.float16).numpy()
    with np.errstate(over="ignore"):  # ±1e6 overflow to ±inf, as in torch
        got = cast_like_torch(values, np.dtype(np.float16))
        direct = values.astype(np.float16)
    assert np.array_equal(got.view(np.uint16), want.view(np.uint16))
    assert not np.array_equal(direct.view(np.uint16), want.view(np.uint16))


def test_a_flat_mean_is_a_fresh_flat_state_with_zero_padding():
    x = {"a": torch.ones(3), "b": torch.full((5,), 2.0)}
    flat = FlatState.pack(x)
    fold = MeanFold([1.0, 3.0])
    fold.add(flat)
    fold.add(FlatState.pack({"a": torch.full((3,), 5.0), "b": torch.zeros(5)}))
    mean = fold.mean()
    assert isinstance(mean, FlatState) and mean.buffer.flags.writeable
    assert mean["a"].tolist() == [4.0] * 3 and mean["b"].tolist() == [0.5] * 5
    payload = np.zeros(flat.layout.nbytes, dtype=bool)
    for slot in flat.layout.slots:
        payload[slot.offset:slot.offset + slot.nbytes] = True
    assert not mean.buffer[~payload].any()


def test_a_flat_fold_that_meets_a_dict_state_adds_it_tensor_by_tensor():
    generator = torch.Generator().manual_seed(4)
    states = [{"a": torch.randn(4, generator=generator), "b": torch.randn(3, generator=generator)}
              for _ in range(3)]
    flat = FlatState.pack(states[0])
    mixed = MeanFold([2.0, 1.0, 4.0])
    for state in (flat, states[1], FlatState.pack(states[2], flat.layout)):
        mixed.add(state)
    want = weighted_mean(states, [2.0, 1.0, 4.0])
    got = mixed.mean()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in got)


def test_a_non_finite_float16_buffer_is_found_in_numpy_and_named():
    from fedray.strategies import filter_finite

    ok = FlatState.pack({"a": torch.ones(3, dtype=torch.float16), "b": torch.ones(2, dtype=torch.float16)})
    bad = FlatState.pack({"a": torch.tensor([1.0, float("nan"), 0.0], dtype=torch.float16),
                          "b": torch.ones(2, dtype=torch.float16)})
    good, rejected = filter_finite([ClientResult(0, 1, ok), ClientResult(1, 1, bad)])
    assert [r.client_id for r in good] == [0] and rejected[0].reason.endswith("values in a")
