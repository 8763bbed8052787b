"""FedAvgM's server step, and the shared pseudo-gradient and step that SCAFFOLD and FedExP use, compute
over whole numpy buffers when the adapters arrive as float32/float64 flat buffers: the same bits as
tensor by tensor in torch, the same checkpoint content, and a state restored from a checkpoint continues
exactly. The FedOpt family keeps its step in torch, tensor by tensor (torch's CPU ``sqrt`` is not always
correctly rounded on large tensors, here 6,586 of 10⁶ float32 values differ from numpy's correctly
rounded one, so numpy would change its bits), and gets the same bits from flat pseudo-gradients as
from dicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.client.objectives import CONTROL_DELTA
from fedray.flat import FlatState, as_flat
from fedray.strategies import ClientResult, build_strategy

CASES = [
    ("fedavgm", {"momentum": 0.7, "server_lr": 0.8}),
    ("fedavgm", {"momentum": 0.6, "variant": "fedmllm"}),
    ("fedadagrad", {"eta": 0.05}),
    ("fedadam", {"eta": 0.05, "beta1": 0.8, "bias_correction": True}),
    ("fedyogi", {"eta": 0.05}),
    ("fedadam", {"eta": 0.05, "variant": "fedmllm"}),
    ("fedyogi", {"eta": 0.05, "variant": "fedmllm"}),
    ("fedadagrad", {"eta": 0.05, "variant": "fedmllm"}),
    ("scaffold", {"server_lr": 0.5}),
    ("fedexp", {}),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]
SHAPES = {"lm.q.lora_A": (8, 2500), "lm.q.lora_B": (2500, 8), "projector.weight": (5, 7), "head": (3,)}


def _states(dtype: torch.dtype, rounds: int = 3, clients: int = 4) -> tuple[dict, list[list[dict]]]:
    generator = torch.Generator().manual_seed(5)
    x = {k: torch.randn(shape, generator=generator).to(dtype) for k, shape in SHAPES.items()}
    per_round = [[{k: v + 0.05 * torch.randn(v.shape, generator=generator).to(dtype) for k, v in x.items()}
                  for _ in range(clients)] for _ in range(rounds)]
    return x, per_round


def _results(name, global_state, params, flat_layout=None):
    results = []
    for cid, p in enumerate(params):
        extras = {CONTROL_DELTA: {k: 0.1 * (v - global_state[k]) for k, v in p.items()}} \
            if name == "scaffold" else {}
        state = FlatState.pack(p, flat_layout) if flat_layout is not None else p
        results.append(ClientResult(cid, 7 + 3 * cid, state, extras=extras))
    return results


def _round(strategy, server_round, global_state, results):
    if strategy.name == "scaffold":
        strategy.configure_fit(server_round, [r.client_id for r in results], global_state)
    return strategy.aggregate_fit(server_round, global_state, results, [])


def _same_bits(a, b) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and
                                      a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)


def _same_state(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    for key, value in a.items():
        if isinstance(value, dict):
            if not (isinstance(b[key], dict) and _same_bits(value, b[key])):
                return False
        elif value != b[key]:
            return False
    return True


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_flat_rounds_give_the_torch_rounds_bits_and_checkpoint_content(name, params, dtype):
    x, rounds = _states(dtype)
    flat_strategy, dict_strategy = build_strategy(name, params), build_strategy(name, params)
    x_flat, x_dict = FlatState.pack(x), dict(x)
    layout = x_flat.layout
    for server_round, params_k in enumerate(rounds, start=1):
        new_flat, metrics_flat = _round(flat_strategy, server_round, x_flat,
                                        _results(name, x_flat, params_k, layout))
        new_dict, metrics_dict = _round(dict_strategy, server_round, x_dict, _results(name, x_dict, params_k))
        if not name.startswith("fed") or name in ("fedavgm", "fedexp"):  # (FedOpt's step is per tensor)
            assert isinstance(new_flat, FlatState) and new_flat.layout == layout
        assert _same_bits(new_flat, new_dict) and metrics_flat == metrics_dict
        assert _same_state(flat_strategy.state_dict(), dict_strategy.state_dict())
        x_flat, x_dict = as_flat(new_flat, layout), new_dict  # as the aggregator keeps the new global
    if name == "fedavgm":
        assert isinstance(flat_strategy.velocity, FlatState)  # the numpy path was taken


@pytest.mark.parametrize("name, params", CASES[:5], ids=IDS[:5])
def test_a_state_restored_from_a_checkpoint_continues_with_the_same_bits(name, params):
    x, rounds = _states(torch.float32)
    flat = FlatState.pack(x)
    uninterrupted, restored = build_strategy(name, params), build_strategy(name, params)
    x_a, _ = _round(uninterrupted, 1, flat, _results(name, flat, rounds[0], flat.layout))
    restored.load_state_dict(uninterrupted.state_dict())  # dicts of tensors, as a checkpoint holds
    x_a = as_flat(x_a, flat.layout)
    x_b = FlatState.pack(x_a.to_dict(), flat.layout)
    for server_round, params_k in enumerate(rounds[1:], start=2):
        x_a, _ = _round(uninterrupted, server_round, x_a, _results(name, x_a, params_k, flat.layout))
        x_b, _ = _round(restored, server_round, x_b, _results(name, x_b, params_k, flat.layout))
        x_a, x_b = as_flat(x_a, flat.layout), as_flat(x_b, flat.layout)
        assert _same_bits(x_a, x_b)
        assert _same_state(uninterrupted.state_dict(), restored.state_dict())


def test_a_float16_adapter_keeps_its_server_state_in_float32_tensors():
    x, rounds = _states(torch.float16, rounds=1)
    flat = FlatState.pack(x)
    strategy = build_strategy("fedadam", {"eta": 0.05})
    new, _ = _round(strategy, 1, flat, _results("fedadam", flat, rounds[0], flat.layout))
    assert all(v.dtype == torch.float32 for v in strategy.state_dict()["m"].values())
    assert np.isfinite(FlatState.pack(dict(new)).typed_array()).all()
