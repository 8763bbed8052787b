"""Sweep files: schema, field paths, type checks of sampled values, and every shipped tune space."""

from __future__ import annotations

from pathlib import Path

import pytest

import fedray  # noqa: F401  (registers the registry-aware scenario checks)
from fedray.config import resolve_field_path
from fedray.engine.history import RoundRecord
from fedray.errors import ConfigError
from fedray.tune import load_space, space_from_dict
from fedray.tune.trainable import round_metrics, trial_bundles

ROOT = Path(__file__).resolve().parents[2]
SPACES = sorted((ROOT / "tune_spaces").glob("*.yaml"))
MINI = str(ROOT / "scenarios" / "mini.yaml")


@pytest.fixture(autouse=True)
def user_paths(tmp_path, monkeypatch):
    """The paper sweeps read ${FEDRAY_DATA}/<dataset> and ${FEDRAY_MODEL}; give them directories."""
    for dataset in ("hateful_memes", "CrisisMMD_v2.0"):
        (tmp_path / "data" / dataset).mkdir(parents=True)
    (tmp_path / "model").mkdir()
    monkeypatch.setenv("FEDRAY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FEDRAY_MODEL", str(tmp_path / "model"))


def sweep(**fields):
    raw = {"name": "t", "scenario": MINI, "overrides": {"data.validation_fraction": 0.1}, **fields}
    return space_from_dict(raw)


def problems_of(**fields) -> list[str]:
    with pytest.raises(ConfigError) as info:
        sweep(**fields)
    return info.value.problems


def test_there_are_shipped_spaces():
    assert {p.name for p in SPACES} >= {"mini-asha.yaml", "offline-grid.yaml", "offline-hparams.yaml",
                                        "paper-hateful-memes.yaml"}


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_shipped_space_validates(path):
    space = load_space(path)
    assert space.bases and space.expected_trials() >= 1
    config = {"scenario": next(iter(space.bases)), **{d.path: d.values[0] for d in space.dimensions}}
    scenario = space.trial_scenario(config)
    assert trial_bundles(space, config)[1:] == [trial_bundles(space, config)[1]] * scenario.resources.actors


def test_mini_asha_is_a_real_asha_sweep_of_at_least_8_trials():
    space = load_space(ROOT / "tune_spaces" / "mini-asha.yaml")
    assert space.expected_trials() >= 8 and space.config.scheduler.name == "asha"
    assert sum(b["CPU"] for b in trial_bundles(space, {"scenario": "mini"})) <= 1.0  # 2 trials on 2 cores


def test_paper_grid_is_scenarios_times_algorithms_times_seeds():
    space = load_space(ROOT / "tune_spaces" / "offline-grid.yaml")
    assert len(space.bases) == 4 and space.expected_trials() == 4 * 5 * 3
    assert space.param_space()["scenario"] == {"grid_search": list(space.bases)}


def test_dimensions_become_tune_samplers_and_values_replace_fields():
    space = sweep(space={"train.lr": {"loguniform": [1e-4, 1e-2]}, "lora.rank": {"randint": [4, 8]},
                         "strategy.name": ["fedavg", "fedadam"],  # a bare list is a grid
                         "train": {"local_steps": {"choice": [5, 10]}}})  # nested keys work too
    params = space.param_space()
    assert params["scenario"] == "mini"
    assert params["strategy.name"] == {"grid_search": ["fedavg", "fedadam"]}
    assert (params["lora.rank"].lower, params["lora.rank"].upper) == (4, 9)  # high included
    assert params["train.lr"].lower == pytest.approx(1e-4)
    assert space.expected_trials() == 2
    scenario = space.trial_scenario({"scenario": "mini", "train.lr": 0.002, "lora.rank": 5,
                                     "strategy.name": "fedadam", "train.local_steps": 10})
    assert (scenario.train.lr, scenario.lora.rank, scenario.strategy.name) == (0.002, 5, "fedadam")
    assert scenario.train.local_steps == 10 and scenario.data.validation_fraction == 0.1


def test_plugin_options_resolve_under_options():
    assert resolve_field_path("strategy.eta") == ("strategy.options.eta", None)
    assert resolve_field_path("objective.options.mu") == ("objective.options.mu", None)
    assert resolve_field_path("train.lr") == ("train.lr", None)
    space = sweep(overrides={"strategy.name": "fedadam", "objective.name": "fedprox"},
                  space={"strategy.eta": {"loguniform": [1e-3, 1e-1]}, "objective.mu": [0.01, 0.1]})
    scenario = space.trial_scenario({"scenario": "mini", "strategy.options.eta": 0.05,
                                     "objective.options.mu": 0.1})
    assert scenario.strategy.options == {"eta": 0.05} and scenario.objective.options == {"mu": 0.1}


def test_unknown_paths_are_listed_with_close_matches():
    problems = problems_of(space={"train.lrr": [0.1], "federation.round": [2], "lora.rank.x": [1]},
                           overrides={"eval.evry": 1})
    text = "\n".join(problems)
    assert "space.train.lrr" in text and "'train.lr'" in text
    assert "space.federation.round" in text and "'federation.rounds'" in text
    assert "lora.rank is a value" in text
    assert "overrides.eval.evry" in text and "'eval.every'" in text
    assert len(problems) == 4  # every problem at once


def test_every_sampled_value_is_type_checked_against_the_schema():
    text = "\n".join(problems_of(space={"train.local_steps": {"uniform": [1, 10]},  # floats into an int
                                        "train.optimizer": ["adamw", "adam"],
                                        "lora.rank": {"choice": [8, 0]},
                                        "strategy.eta": [0.1]}))  # fedavg has no eta
    assert "train.local_steps: got 1.0 (float), expected an integer" in text
    assert "train.optimizer: got 'adam'" in text
    assert "lora.rank: got 0, must be >= 1" in text
    assert "'fedavg' has no parameter 'eta'" in text


def test_grid_points_are_checked_in_combination():
    # each value alone is fine; fedavg × a FedAdam option is not
    text = "\n".join(problems_of(space={"strategy.name": ["fedadam", "fedavg"], "strategy.beta1": [0.9]},
                                 search={"name": "grid"}))
    assert "strategy.name='fedavg'" in text and "has no parameter 'beta1'" in text


def test_schema_problems_are_collected():
    problems = problems_of(space={"train.lr": {"loguniform": [0, 1]}, "train.batch_size": {"randint": [8, 4]},
                                  "seed": {"normal": [0, 1]}},
                           scheduler={"name": "asha", "grace_period": 5, "max_t": 2},
                           num_samples=0, search={"name": "grid"}, placement={"strategy": "pack"})
    text = "\n".join(problems)
    for expected in ("loguniform: low (0) must be above 0", "low (8) must be below high (4)",
                     "space.seed: got {'normal'", "num_samples: got 0",
                     "grace_period (5) exceeds scheduler.max_t (2)", "expected one of 'PACK'"):
        assert expected in text, expected


def test_metric_names_the_split():
    assert "metric: got 'accuracy', expected val_<metric>" in "\n".join(problems_of(metric="accuracy"))
    assert sweep(metric="test_auc").config.metric == "test_auc"


def test_grid_search_needs_grid_dimensions():
    text = "\n".join(problems_of(space={"train.lr": {"uniform": [0.001, 0.01]}}, search={"name": "grid"}))
    assert "search.name=grid needs every dimension to be a grid" in text


def test_optuna_without_the_package_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "optuna" else real(name, *a))
    text = "\n".join(problems_of(search={"name": "optuna"}, space={"train.lr": [0.1]}))
    assert "optuna needs the optuna package, which is not installed" in text


def test_bad_base_scenarios_and_overrides_are_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: -1}\n")
    problems = problems_of(scenario=[MINI, str(bad), str(tmp_path / "missing.yaml")],
                           overrides={"federation.rounds": "many"})
    text = "\n".join(problems)
    assert "scenario[1]" in text and "train.lr: got -1.0, must be > 0" in text
    assert "scenario[2]" in text and "missing.yaml does not exist" in text
    assert "scenario[0]" in text and "federation.rounds: got 'many'" in text


def test_scenario_paths_are_relative_to_the_sweep_file_and_overrides_apply(tmp_path):
    (tmp_path / "s.yaml").write_text("name: s\ndata: {validation_fraction: 0.1}\n")
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "x.yaml").write_text("scenario: ../s.yaml\nspace: {train.lr: [0.1, 0.2]}\n")
    space = load_space(tmp_path / "sweeps" / "x.yaml", ["num_samples=3", "overrides.federation.rounds=4"])
    assert space.config.num_samples == 3 and space.expected_trials() == 6
    assert space.bases["s"]["federation"]["rounds"] == 4 and space.max_rounds() == 4


def test_round_metrics_names_validation_and_test_apart():
    record = RoundRecord(server_round=3, train_loss=0.5, eval={"accuracy": 0.8, "image_only/accuracy": 0.6},
                         validation={"accuracy": 0.7}, bytes_sent=2**20)
    assert round_metrics(record) == {"server_round": 3, "train_loss": 0.5, "val_accuracy": 0.7,
                                     "test_accuracy": 0.8, "test_image_only_accuracy": 0.6, "mib_sent": 1.0}


def test_trial_bundles_reserve_the_driver_and_every_client_actor():
    space = sweep(overrides={"resources.actors": 3, "resources.cpus_per_actor": 2,
                             "resources.gpus_per_actor": 0.5}, placement={"driver_cpus": 0.25})
    assert trial_bundles(space, {"scenario": "mini"}) == [{"CPU": 0.25}] + [{"CPU": 2.0, "GPU": 0.5}] * 3


def test_loggers_are_checked_by_name_and_typed_options():
    assert dict(sweep(loggers={"mlflow": {}}).config.loggers) == {"mlflow": {}}
    text = "\n".join(problems_of(loggers={"mlfow": {}, "mlflow": {"trackin_uri": "x"}}))
    assert "unknown sweep logger 'mlfow'" in text and "did you mean 'mlflow'" in text.lower()
    assert "loggers.mlflow.trackin_uri" in text and "'tracking_uri'" in text


def test_shrinking_overrides_from_the_docs_apply():
    space = load_space(ROOT / "tune_spaces" / "offline-grid.yaml",
                       ["name=grid-smoke", "overrides.federation.rounds=2", "space.seed=[0]"])
    assert space.max_rounds() == 2 and space.expected_trials() == 4 * 5
