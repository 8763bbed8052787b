"""Properties every rule shares: checkpoint round trip, rejection of non-finite clients, fixed points,
sample weighting, plus the shared helpers in ``base.py``."""

import io
import math

import pytest
import torch

from fedray.errors import FedRayError
from fedray.strategies import ClientFailure, ClientResult, build_strategy, filter_finite, pseudo_gradient

CASES = [
    ("fedavg", {}),
    ("fedavgm", {"server_lr": 0.7}),
    ("fedavgm", {"variant": "fedmllm"}),
    ("fedadagrad", {"eta": 0.1}),
    ("fedadagrad", {"variant": "fedmllm"}),
    ("fedadagrad", {"beta1": 0.5, "bias_correction": True}),
    ("fedadam", {"eta": 0.1}),
    ("fedadam", {"variant": "fedmllm"}),
    ("fedadam", {"bias_correction": True}),
    ("fedyogi", {"eta": 0.1}),
    ("fedyogi", {"variant": "fedmllm"}),
    ("fedmedian", {}),
    ("fedtrimmedavg", {"beta": 0.2}),
    ("krum", {"num_malicious": 1}),
    ("krum", {"num_malicious": 1, "num_to_keep": 3}),
    ("dp", {"inner": "fedadam", "inner_params": {"eta": 0.05}, "noise_multiplier": 0.5, "clip_norm": 2.0}),
    ("dp", {"inner": "fedavgm", "inner_params": {"variant": "fedmllm"}, "noise_multiplier": 1.0}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in params.items() if k != 'inner_params')}"
       for name, params in CASES]
MY_RULES = {"fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi", "fedmedian", "fedtrimmedavg", "krum",
            "dp"}


def _global():
    return {"a": torch.linspace(-1, 1, 6).reshape(2, 3), "b": torch.tensor([0.5, -0.5, 0.0, 2.0])}


def _results(x, server_round, count=5):
    """Deterministic client updates that differ per client, round and coordinate."""
    out = []
    for cid in range(count):
        params = {}
        for i, (key, tensor) in enumerate(x.items()):
            step = torch.arange(tensor.numel(), dtype=torch.float32).reshape(tensor.shape)
            params[key] = tensor + 0.1 * torch.sin(step + 1.3 * cid + 0.7 * server_round + i)
        out.append(ClientResult(cid, 10 + 5 * cid, params))
    return out


def _roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_cases_cover_every_rule_built_here():
    assert {name for name, _ in CASES} == MY_RULES


@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_state_dict_round_trip_gives_identical_round_three(name, params):
    original = build_strategy(name, params)
    x = _global()
    for server_round in (1, 2):
        x, _ = original.aggregate_fit(server_round, x, _results(x, server_round), [])
    saved = original.state_dict()
    loaded = _roundtrip(saved)
    restored = build_strategy(name, params)
    restored.load_state_dict(loaded)
    expected, expected_metrics = original.aggregate_fit(3, x, _results(x, 3), [])
    got, metrics = restored.aggregate_fit(3, x, _results(x, 3), [])
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    assert metrics == expected_metrics
    # state_dict() is a snapshot (round three changed neither it nor what was loaded from it)
    assert _same(saved, _roundtrip(loaded)) and _same(saved, loaded)
    if name in {"fedavgm", "fedadam", "fedyogi", "fedadagrad", "dp"}:
        assert not _same(saved, original.state_dict())


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("name", ["fedavgm", "fedadam", "dp"])
def test_load_state_dict_rejects_a_foreign_state(name):
    with pytest.raises(FedRayError, match="state needs key"):
        build_strategy(name).load_state_dict({"unrelated": 1})


@pytest.mark.parametrize("name, params", [c for c in CASES if c[0] != "fedavg"],
                         ids=[i for i, c in zip(IDS, CASES) if c[0] != "fedavg"])
def test_non_finite_clients_are_rejected(name, params):
    x = _global()
    good = _results(x, 1)
    bad = _results(x, 1, count=7)[5:]
    bad[0].params["a"][0, 1] = float("nan")
    bad[1].params["b"][3] = float("inf")
    failures = [ClientFailure(9, "timeout")]
    got, metrics = build_strategy(name, params).aggregate_fit(1, x, good + bad, failures)
    expected, _ = build_strategy(name, params).aggregate_fit(1, x, good, failures)
    assert metrics["num_rejected"] == 2 and metrics["num_failures"] == 1 and metrics["num_results"] == 5
    for key in expected:
        assert torch.equal(got[key], expected[key])


@pytest.mark.parametrize("name", sorted(MY_RULES - {"fedavg"}))
def test_nothing_usable_is_a_clear_error(name):
    x = _global()
    bad = _results(x, 1, count=1)
    bad[0].params["b"][0] = float("nan")
    reasons = r"no usable client result.*client 4: OOM; client 0: non-finite.*in b"
    with pytest.raises(FedRayError, match=reasons):
        build_strategy(name).aggregate_fit(1, x, bad, [ClientFailure(4, "OOM")])
    with pytest.raises(FedRayError, match=r"0 returned.*client 4: OOM"):
        build_strategy(name).aggregate_fit(1, x, [], [ClientFailure(4, "OOM")])


@pytest.mark.parametrize("name, params", [c for c in CASES if c[0] != "dp"] + [
    ("dp", {"inner": "fedadam", "noise_multiplier": 0.0})])
def test_clients_that_did_not_move_leave_the_global_unchanged(name, params):
    strategy = build_strategy(name, params)
    x = _global()
    for server_round in (1, 2, 3):
        unchanged = [ClientResult(c, 3 + c, {k: v.clone() for k, v in x.items()}) for c in range(5)]
        new, _ = strategy.aggregate_fit(server_round, x, unchanged, [])
        for key in x:
            assert torch.equal(new[key], x[key]), (name, key)


@pytest.mark.parametrize("name, params", [("fedavg", {}), ("fedavgm", {}), ("fedmedian", {}),
                                          ("fedtrimmedavg", {}), ("krum", {"num_to_keep": 2}),
                                          ("dp", {"clip_norm": 1e9, "noise_multiplier": 0.0})])
def test_identical_clients_are_adopted(name, params):
    # every client returns the same p: the mean-type rules (and FedAvgM's first round) return p
    x = _global()
    p = {k: v + 0.25 for k, v in x.items()}
    results = [ClientResult(c, 1 + c, {k: v.clone() for k, v in p.items()}) for c in range(4)]
    new, _ = build_strategy(name, params).aggregate_fit(1, x, results, [])
    for key in p:
        assert torch.allclose(new[key], p[key], atol=1e-6)


@pytest.mark.parametrize("name, params, weighted", [
    ("fedavg", {}, True), ("fedavgm", {}, True), ("fedadam", {"eta": 0.1}, True),
    ("fedadam", {"variant": "fedmllm"}, False), ("fedmedian", {}, False),
])
def test_sample_weights_matter_only_where_the_rule_says(name, params, weighted):
    x = {"w": torch.zeros(2, dtype=torch.float64)}

    def run(weights):
        results = [ClientResult(0, weights[0], {"w": torch.tensor([1.0, 0.0], dtype=torch.float64)}),
                   ClientResult(1, weights[1], {"w": torch.tensor([0.0, 2.0], dtype=torch.float64)})]
        return build_strategy(name, params).aggregate_fit(1, x, results, [])[0]["w"]

    assert torch.equal(run([1, 3]), run([3, 1])) != weighted
    if name == "fedavg":
        assert run([1, 3]).tolist() == [0.25, 1.5]  # (1·[1, 0] + 3·[0, 2]) / 4


def test_filter_finite_names_the_tensors():
    results = [ClientResult(0, 1, {"a": torch.ones(2), "b": torch.ones(1)}),
               ClientResult(1, 1, {"a": torch.tensor([1.0, math.inf]), "b": torch.tensor([math.nan])}),
               ClientResult(2, 1, {"a": torch.tensor([-math.inf, 0.0], dtype=torch.bfloat16),
                                   "b": torch.ones(1)})]
    good, rejected = filter_finite(results)
    assert [r.client_id for r in good] == [0]
    assert rejected == [ClientFailure(1, "non-finite (NaN/Inf) values in a, b"),
                        ClientFailure(2, "non-finite (NaN/Inf) values in a")]


def test_pseudo_gradient_weighted_and_unweighted():
    x = {"w": torch.tensor([1.0, 1.0], dtype=torch.bfloat16)}
    results = [ClientResult(0, 1, {"w": torch.tensor([2.0, 1.0], dtype=torch.bfloat16)}),
               ClientResult(1, 3, {"w": torch.tensor([1.0, 0.0], dtype=torch.bfloat16)})]
    # weighted: (1·[1, 0] + 3·[0, −1]) / 4 = [0.25, −0.75]; unweighted: ([1, 0] + [0, −1]) / 2 = [0.5, −0.5]
    weighted = pseudo_gradient(x, results)
    assert weighted["w"].dtype == torch.float32 and weighted["w"].tolist() == [0.25, -0.75]
    assert pseudo_gradient(x, results, weighted=False)["w"].tolist() == [0.5, -0.5]
