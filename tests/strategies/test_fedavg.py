import pytest
import torch

from fedray.errors import FedRayError
from fedray.strategies import ClientFailure, ClientResult, build_strategy


def _result(cid, n, a, b):
    return ClientResult(client_id=cid, num_examples=n,
                        params={"w": torch.tensor([a, b]), "z": torch.tensor([[a]])})


def test_fedavg_weights_by_num_examples():
    strategy = build_strategy("fedavg")
    global_state = {"w": torch.zeros(2), "z": torch.zeros(1, 1)}
    results = [_result(0, 1, 1.0, 2.0), _result(1, 3, 5.0, -2.0)]
    new, metrics = strategy.aggregate_fit(1, global_state, results, failures=[])
    # (1·1 + 3·5)/4 = 4.0 ; (1·2 + 3·-2)/4 = -1.0
    assert torch.allclose(new["w"], torch.tensor([4.0, -1.0]))
    assert torch.allclose(new["z"], torch.tensor([[4.0]]))
    assert metrics["num_results"] == 2


def test_fedavg_ignores_failures_and_keeps_dtype():
    strategy = build_strategy("fedavg")
    global_state = {"w": torch.zeros(2, dtype=torch.bfloat16), "z": torch.zeros(1, 1)}
    results = [ClientResult(0, 2, {"w": torch.tensor([2.0, 4.0], dtype=torch.bfloat16),
                                   "z": torch.ones(1, 1)})]
    new, metrics = strategy.aggregate_fit(1, global_state, results,
                                          failures=[ClientFailure(3, "timed out")])
    assert new["w"].dtype == torch.bfloat16
    assert torch.equal(new["w"], torch.tensor([2.0, 4.0], dtype=torch.bfloat16))
    assert metrics["num_failures"] == 1


def test_fedavg_rejects_mismatched_keys_and_shapes():
    strategy = build_strategy("fedavg")
    global_state = {"w": torch.zeros(2), "z": torch.zeros(1, 1)}
    with pytest.raises(ValueError, match="keys"):
        strategy.aggregate_fit(1, global_state, [ClientResult(0, 1, {"w": torch.zeros(2)})], [])
    with pytest.raises(ValueError, match="shape"):
        strategy.aggregate_fit(1, global_state,
                               [ClientResult(0, 1, {"w": torch.zeros(3), "z": torch.zeros(1, 1)})], [])


def test_unknown_strategy_and_parameter_are_clear_errors():
    with pytest.raises(FedRayError, match="unknown strategy 'fedavgg'.*fedavg"):
        build_strategy("fedavgg")
    with pytest.raises(FedRayError, match="strategy.eta: unknown key in strategy"):
        build_strategy("fedavg", {"eta": 0.1})
