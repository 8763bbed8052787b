"""Typed strategy and objective parameters: checked at load with their paths, by the same rules when a
rule is built in Python; the template every rule shares; the ``linear`` declaration; the client-state hook."""

import dataclasses
from pathlib import Path

import pytest
import torch

import fedray  # noqa: F401  (registers the load-time checks)
from fedray.client.objectives import OBJECTIVES, ScaffoldObjective
from fedray.config import load_scenario, scenario_from_dict
from fedray.config.params import describe_params
from fedray.errors import ConfigError, FedRayError
from fedray.strategies import STRATEGIES, ClientResult, FedAdam, Strategy, build_strategy
from fedray.strategies.fedopt import FedOptParams

MINI = Path(__file__).resolve().parents[2] / "scenarios" / "mini.yaml"
OBJECTIVE_NAMES = ["fedprox", "adaptive_prox", "plain"]
SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _out_of_range(params_class: type, path: str) -> tuple[dict, set[str]]:
    """One value just outside the bounds of every bounded field, and the problem the loader must report."""
    values, expected = {}, set()
    for f in dataclasses.fields(params_class):
        kind = next((k for k in ("ge", "gt", "lt", "le") if f.metadata.get(k) is not None), None)
        if kind is None:
            continue
        bound = f.metadata[kind]
        bad = {"ge": bound - 1, "gt": bound, "le": bound + 1, "lt": bound}[kind]
        bad = float(bad) if f.type in (float, "float") else int(bad)
        values[f.name] = bad
        expected.add(f"{path}.{f.name}: got {bad!r}, must be {SYMBOLS[kind]} {bound:g}")
    return values, expected


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_every_bounded_parameter_is_reported_at_load_in_one_error(strategy):
    objective = OBJECTIVE_NAMES[STRATEGIES.names().index(strategy) % 2]  # fedprox / adaptive_prox in turn
    bad_strategy, expected = _out_of_range(STRATEGIES.params_class(strategy), "strategy")
    bad_objective, expected_objective = _out_of_range(OBJECTIVES.params_class(objective), "objective")
    raw = {"strategy": {"name": strategy, **bad_strategy}, "objective": {"name": objective, **bad_objective},
           "train": {"lr": -1.0}}
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(raw)
    assert set(info.value.problems) == expected | expected_objective | {"train.lr: got -1.0, must be > 0"}
    assert len(info.value.problems) == len(expected) + len(expected_objective) + 1


def test_the_cases_cover_every_bounded_parameter():
    bounded = {name for name in STRATEGIES.names() if _out_of_range(STRATEGIES.params_class(name), "")[0]}
    assert bounded == set(STRATEGIES.names()) - {"fedavg", "fedmedian"}  # the two without parameters
    assert set(OBJECTIVES.names()) == set(OBJECTIVE_NAMES)
    assert all(_out_of_range(OBJECTIVES.params_class(n), "")[0] for n in OBJECTIVE_NAMES if n != "plain")


def test_validate_reports_the_issue_example_with_paths_and_ranges():
    with pytest.raises(ConfigError) as info:
        load_scenario(MINI, ["strategy.name=fedadam", "strategy.eta=-1", "strategy.beta1=2"])
    assert info.value.problems == ["strategy.eta: got -1.0, must be > 0",
                                   "strategy.beta1: got 2.0, must be < 1"]
    with pytest.raises(ConfigError) as info:
        load_scenario(MINI, ["strategy.name=fedadam", "strategy.eta=abc"])
    assert info.value.problems == ["strategy.eta: got 'abc' (str), expected a number"]


def test_cross_field_nested_and_pairing_rules_are_reported_at_load():
    raw = {"strategy": {"name": "dp", "inner": "fedadagrad",
                        "inner_params": {"variant": "fedmllm", "beta1": 0.5, "tau": 0.0}}}
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(raw)
    assert info.value.problems == ["strategy.inner_params.tau: got 0.0, must be > 0"]
    raw["strategy"]["inner_params"]["tau"] = 0.1
    with pytest.raises(ConfigError, match="uses no momentum.*beta1 must be 0.0, got 0.5"):
        scenario_from_dict(raw)
    with pytest.raises(ConfigError, match="strategy.name: strategy scaffold brings its own client objective"):
        scenario_from_dict({"strategy": {"name": "scaffold"}, "objective": {"name": "fedprox"}})
    # N comes from the engine, not from the user
    with pytest.raises(ConfigError, match="strategy.num_clients: strategy 'scaffold' has no parameter"):
        scenario_from_dict({"strategy": {"name": "scaffold", "num_clients": 4}})


def test_direct_construction_validates_through_the_same_params():
    assert FedAdam(eta=0.1).params == FedOptParams(eta=0.1)
    assert FedAdam(FedOptParams(tau=0.5)).params.tau == 0.5
    with pytest.raises(ConfigError) as info:
        FedAdam(eta=-1, beta1=2)
    assert info.value.problems == ["fedadam.eta: got -1.0, must be > 0",
                                   "fedadam.beta1: got 2.0, must be < 1"]
    with pytest.raises(FedRayError, match="either a FedOptParams or keyword options"):
        FedAdam(FedOptParams(), eta=0.2)
    with pytest.raises(FedRayError, match="num_clients is the client population"):
        FedAdam(num_clients=0)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_rule_uses_the_template_and_says_what_it_is(name):
    cls = STRATEGIES.get(name)
    assert cls.aggregate_fit is Strategy.aggregate_fit, "the prologue runs once, in the base class"
    assert isinstance(cls.linear, bool) and cls.name == name
    assert all(row["help"] for row in describe_params(STRATEGIES.params_class(name)))


def _results(values, with_variates=False):
    out = []
    for cid, value in enumerate(values):
        extras = {"control_delta": {"w": torch.tensor(value)}} if with_variates else {}
        out.append(ClientResult(cid, 2, {"w": torch.tensor(value, dtype=torch.float64)}, extras=extras))
    return out


LINEAR_CASES = [("fedavg", {}), ("fedavgm", {}), ("fedadam", {"variant": "fedmllm"}), ("fedyogi", {}),
                ("fedadagrad", {}), ("scaffold", {"server_lr": 0.5}),
                ("dp", {"inner": "fedadam", "clip_norm": 1e9, "noise_multiplier": 0.0})]
ROBUST_CASES = [("fedmedian", {}), ("fedtrimmedavg", {"beta": 0.34}), ("krum", {})]


@pytest.mark.parametrize("name, params", LINEAR_CASES + ROBUST_CASES)
def test_linear_rules_read_their_clients_only_through_the_mean(name, params):
    # Equal weights; the second cohort has the first one's mean. Linear rules cannot tell them apart,
    # robust ones (which need all the results at once) can.
    x = {"w": torch.tensor([0.0, 0.0], dtype=torch.float64)}
    spread, same_mean = [[0.0, 1.0], [1.0, -2.0], [5.0, 4.0]], [[2.0, 1.0]] * 3
    scaffold = name == "scaffold"
    got = []
    for values in (spread, same_mean):
        strategy = build_strategy(name, params, num_clients=6)
        strategy.configure_fit(1, [0, 1, 2], x)
        got.append(strategy.aggregate_fit(1, x, _results(values, scaffold), [])[0]["w"])
    assert STRATEGIES.get(name).linear == torch.allclose(got[0], got[1], atol=1e-12)


def test_scaffold_keeps_each_clients_variate_through_the_hook():
    variate = {"w": torch.tensor([0.5])}
    result = ClientResult(3, 1, {"w": torch.zeros(1)}, extras={"control_variate": variate})
    kept = build_strategy("scaffold").client_state_update(result)
    assert ScaffoldObjective(server_variate={"w": torch.zeros(1)}).for_client(kept).client_variate is variate
    assert build_strategy("fedavg").client_state_update(result) is None


def test_scaffold_steps_its_control_by_one_over_the_population():
    x = {"w": torch.zeros(2)}
    deltas = [{"control_delta": {"w": torch.tensor([1.0, -1.0])}}] * 2
    results = [ClientResult(c, 1, {"w": torch.ones(2)}, extras=deltas[c]) for c in range(2)]
    for population, expected in ((8, 0.25), (None, 1.0)):  # Σ Δc / N, or / |S| without a population
        strategy = build_strategy("scaffold", num_clients=population)
        strategy.aggregate_fit(1, x, results, [])
        assert strategy.control["w"].tolist() == [expected, -expected]
