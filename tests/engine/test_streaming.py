"""A round streamed through the aggregator: results arrive in any order and are taken in cohort order as
soon as the next one is there, so the aggregate is the same bits whatever order the fits finished in;
what a round cannot use is reported when it closes. No cluster: the actor is a plain object here."""

from __future__ import annotations

import itertools

import pytest
import ray
import torch

from fedray.config.schema import ObjectiveConfig, StrategyConfig
from fedray.engine.aggregator import AggregatorActor
from fedray.engine.checkpoint import load_checkpoint
from fedray.engine.tasks import AggregatorSetup, FitFailure, FitReport
from fedray.flat import FlatState


def _setup(strategy="fedavg", isolated=False, **options):
    return AggregatorSetup(strategy=StrategyConfig(name=strategy, options=options),
                           objective=ObjectiveConfig(), num_clients=6, client_states_in_memory=8,
                           isolated=isolated)


def _initial():
    return FlatState.pack({"a": torch.linspace(-1, 1, 6).reshape(2, 3), "b": torch.tensor([0.5, -0.25, 2.0])})


def _update(client):
    params = {k: v + 0.1 * torch.sin(torch.arange(v.numel(), dtype=torch.float32).reshape(v.shape) + client)
              for k, v in _initial().items()}
    return FitReport(client_id=client, num_examples=3 + client), FlatState.pack(params)


def _round(actor, cohort, arrival, failures=(), server_round=1):
    actor.begin_round(server_round, [(c, 3 + c) for c in cohort])
    for client in arrival:
        actor.add_result(server_round, *_update(client))
    return actor.close_round(server_round, list(failures))


@pytest.mark.parametrize("strategy, options", [("fedavg", {}), ("fedadam", {"eta": 0.1})])
def test_any_arrival_order_gives_the_same_bits(tmp_path, strategy, options):
    cohort = [4, 1, 3]
    outcomes = []
    for arrival in itertools.permutations(cohort):
        actor = AggregatorActor(_setup(strategy, **options), _initial(), str(tmp_path))
        metrics = _round(actor, cohort, arrival)
        outcomes.append((actor.get_global(), metrics))
    first, metrics = outcomes[0]
    assert isinstance(first, FlatState) and metrics["num_results"] == 3.0
    assert all(list(g) == list(first) and all(torch.equal(g[k], first[k]) for k in g) and m == metrics
               for g, m in outcomes)


def test_results_are_folded_as_soon_as_their_turn_comes(tmp_path):
    actor = AggregatorActor(_setup(), _initial(), str(tmp_path))
    actor.begin_round(1, [(c, 3 + c) for c in (0, 1, 2)])
    actor.add_result(1, *_update(1))
    assert actor.round.taken == 0  # waits for client 0
    actor.add_result(1, *_update(0))
    assert actor.round.taken == 2 and not actor.round.arrived
    actor.add_result(1, *_update(2))
    assert actor.round.aggregation.fold is not None and actor.round.aggregation.fold.fold.count == 3
    assert actor.close_round(1, [])["num_results"] == 3.0


def test_a_failed_client_is_passed_over_at_the_close(tmp_path, monkeypatch):
    streamed = AggregatorActor(_setup(), _initial(), str(tmp_path / "a"))
    metrics = _round(streamed, [0, 1, 2], [2, 0], failures=[FitFailure(1, "timed out")])
    gathered = AggregatorActor(_setup(), _initial(), str(tmp_path / "b"))
    reports, params = zip(*(_update(c) for c in (0, 2)))
    monkeypatch.setattr(ray, "get", lambda refs, **_: refs)  # the whole-round call fetches ObjectRefs
    expected = gathered.aggregate(1, list(reports), list(params), [FitFailure(1, "timed out")])
    assert metrics == expected == {"num_results": 2.0, "num_failures": 1.0, "num_rejected": 0.0}
    assert all(torch.equal(streamed.get_global()[k], gathered.get_global()[k]) for k in _initial())


def test_an_error_while_folding_is_raised_when_the_round_closes(tmp_path):
    actor = AggregatorActor(_setup(), _initial(), str(tmp_path))
    actor.begin_round(1, [(0, 3)])
    actor.add_result(1, FitReport(client_id=0, num_examples=3), {"a": torch.zeros(2, 3)})  # a key missing
    with pytest.raises(ValueError, match="keys that differ"):
        actor.close_round(1, [])


def test_the_local_baseline_keeps_an_own_copy_of_each_adapter(tmp_path):
    actor = AggregatorActor(_setup(isolated=True), _initial(), str(tmp_path))
    assert _round(actor, [0, 2], [2, 0]) == {"clients_kept": 2.0}
    kept = actor.get_client_state(2)
    assert torch.equal(kept["a"], _update(2)[1]["a"]) and kept.buffer is not _update(2)[1].buffer


def test_checkpoint_holds_plain_tensors_and_resumes(tmp_path):
    actor = AggregatorActor(_setup("fedavgm", isolated=False, momentum=0.5), _initial(), str(tmp_path))
    _round(actor, [0, 1], [1, 0])
    actor.save_checkpoint(1, {"best_round": None})
    payload = load_checkpoint(tmp_path)  # torch.load(weights_only=True): no FlatState inside
    assert isinstance(payload["aggregator"]["global_state"], dict)
    again = AggregatorActor(_setup("fedavgm", momentum=0.5), _initial(), str(tmp_path))
    assert again.resume() == (1, {"best_round": None})
    _round(actor, [0, 1], [0, 1], server_round=2)
    _round(again, [0, 1], [1, 0], server_round=2)
    assert all(torch.equal(actor.get_global()[k], again.get_global()[k]) for k in _initial())


def test_adapters_are_written_by_the_aggregator(tmp_path):
    from fedray.engine.adapter_files import read_adapter

    actor = AggregatorActor(_setup(), _initial(), str(tmp_path))
    actor.save_adapter("global_adapter")
    written = read_adapter(tmp_path, "global_adapter")
    assert all(torch.equal(written[k], _initial()[k]) for k in written)


def test_a_batch_of_results_is_taken_like_single_ones(tmp_path):
    one, batch = (AggregatorActor(_setup("fedadam", eta=0.1), _initial(), str(tmp_path / n)) for n in "ab")
    _round(one, [2, 0, 1], [1, 2, 0])
    batch.begin_round(1, [(c, 3 + c) for c in (2, 0, 1)])
    batch.add_results(1, *_update(1), *_update(2))
    batch.add_results(1, *_update(0))
    assert batch.close_round(1, []) == {"num_results": 3.0, "num_failures": 0.0, "num_rejected": 0.0,
                                        "server_lr": 0.1}
    assert all(torch.equal(one.get_global()[k], batch.get_global()[k]) for k in _initial())
