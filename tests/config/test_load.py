"""Tests for fedray.config.load: YAML → overrides → ${ENV} → validated Scenario, all problems at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from fedray.config import (
    LoraConfig,
    Scenario,
    StrategyConfig,
    TinyVlmConfig,
    TrainConfig,
    build_dataclass,
    dump_scenario,
    expand_env,
    load_scenario,
    parse_overrides,
    register_semantic_check,
    scenario_from_dict,
    scenario_to_dict,
)
from fedray.config import load as load_module
from fedray.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(raw: dict, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(raw, overrides)
    return info.value.problems


@pytest.fixture(autouse=True)
def no_semantic_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate every test from checks that plug-in packages may have registered on import."""
    monkeypatch.setattr(load_module, "SEMANTIC_CHECKS", [])


# --- defaults and generic building -------------------------------------------------------------------


def test_empty_mapping_gives_the_defaults() -> None:
    assert scenario_from_dict({}) == Scenario()
    instance, problems = build_dataclass(Scenario, {})
    assert (instance, problems) == (Scenario(), [])


def test_empty_file_and_empty_section_give_the_defaults(tmp_path: Path) -> None:
    assert load_scenario(write(tmp_path, "")) == Scenario()
    assert load_scenario(write(tmp_path, "train:\n", "b.yaml")).train == TrainConfig()


def test_file_with_several_mistakes_reports_every_one_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: demo
        federation:
          roundz: 5               # unknown key
        partition:
          num_clients: ten        # wrong type
        eval:
          batch_size: 0           # out of range
        model:
          dtype: float33          # not one of the literals
        train:
          local_epochs: 2         # with the default local_steps: cross-field problem
          btach_size: 4           # unknown key beside a cross-field problem
        """)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    problems = info.value.problems
    assert info.value.source == str(path)
    expected = [
        ("federation.roundz:", "did you mean 'rounds'"),
        ("partition.num_clients:", "got 'ten' (str), expected an integer"),
        ("eval.batch_size:", "got 0, must be >= 1"),
        ("model.dtype:", "expected one of 'float32', 'bfloat16', 'float16'; did you mean 'float32'"),
        ("train.btach_size:", "did you mean 'batch_size'"),
        ("train:", "set exactly one of train.local_steps and train.local_epochs"),
    ]
    assert len(problems) == len(expected), problems
    for prefix, fragment in expected:
        assert any(p.startswith(prefix) and fragment in p for p in problems), (prefix, problems)
    assert str(path) in str(info.value) and "6 problem(s)" in str(info.value)


def test_unknown_key_and_cross_field_problem_are_reported_together() -> None:
    problems = problems_of({"train": {"local_epochs": 1, "btach_size": 4}})
    assert len(problems) == 2, problems
    assert problems[0].startswith("train.btach_size: unknown key") and "'batch_size'" in problems[0]
    assert "set exactly one of train.local_steps and train.local_epochs" in problems[1]


def test_scenario_rules_run_despite_unknown_keys_in_sections() -> None:
    problems = problems_of({"train": {"lrr": 1}, "federation": {"clients_per_round": 20}})
    assert len(problems) == 2, problems
    assert problems[0].startswith("train.lrr: unknown key")
    assert problems[1].startswith("federation.clients_per_round (20) exceeds partition.num_clients (10)")


def test_out_of_range_value_skips_the_section_rules_that_would_divide_by_it() -> None:
    expected = ["model.tiny.patch_size: got 0, must be >= 1"]
    assert problems_of({"model": {"tiny": {"patch_size": 0}}}) == expected


def test_out_of_range_message_names_the_bound() -> None:
    assert problems_of({"train": {"lr": -1}}) == ["train.lr: got -1.0, must be > 0"]
    assert problems_of({"data": {"test_fraction": 1.5}}) == ["data.test_fraction: got 1.5, must be < 1"]


def test_type_rules() -> None:
    assert problems_of({"seed": True}) == ["seed: got True (bool), expected an integer"]
    assert problems_of({"train": {"lr": True}}) == ["train.lr: got True (bool), expected a number"]
    assert problems_of({"federation": {"rounds": 2.5}}) == [
        "federation.rounds: got 2.5 (float), expected an integer"]
    assert problems_of({"eval": {"at_start": "yes"}}) == [
        "eval.at_start: got 'yes' (str), expected true or false"]
    assert problems_of({"train": 5})[0].startswith("train: got 5 (int), expected a mapping of")
    assert problems_of({"model": {"path": 3}}) == ["model.path: got 3 (int), expected a string or null"]
    scenario = scenario_from_dict({"train": {"lr": 1}, "partition": {"num_clients": "12"},
                                   "data": {"test_fraction": "1e-1"}})
    assert scenario.train.lr == 1.0 and isinstance(scenario.train.lr, float)
    assert scenario.partition.num_clients == 12
    assert scenario.data.test_fraction == pytest.approx(0.1)


def test_nested_cross_field_problems_come_from_the_section() -> None:
    instance, problems = build_dataclass(TinyVlmConfig, {"patch_size": 5})
    assert instance is None
    assert problems == ["model.tiny.image_size (32) must be a multiple of model.tiny.patch_size (5)"]


def test_tuple_of_str_from_a_single_string_or_a_list() -> None:
    lora, problems = build_dataclass(LoraConfig, {"modules_to_save": "multi_modal_projector"})
    assert problems == [] and lora.modules_to_save == ("multi_modal_projector",)
    lora, _ = build_dataclass(LoraConfig, {"modules_to_save": ["a", "b"]})
    assert lora.modules_to_save == ("a", "b")
    _, problems = build_dataclass(LoraConfig, {"modules_to_save": ["a", 3]}, "lora")
    assert problems == ["lora.modules_to_save[1]: got 3 (int), expected a string"]


def test_undeclared_keys_go_to_the_extra_mapping() -> None:
    strategy, problems = build_dataclass(StrategyConfig, {"name": "fedadam", "eta": 0.01,
                                                          "options": {"tau": 1e-3}})
    assert problems == []
    assert strategy.options == {"eta": 0.01, "tau": 1e-3}
    assert type(strategy.options) is dict
    clash = problems_of({"strategy": {"eta": 1, "options": {"eta": 2}}})
    assert clash == ["strategy.eta: given both inline and under strategy.options; keep one"]


# --- overrides --------------------------------------------------------------------------------------


def test_parse_overrides_builds_nested_yaml_values() -> None:
    tree = parse_overrides(["a.b.c=null", "a.b.d=true", "x=[1, 2]", "a.e=hello", "a.b.c=3"])
    assert tree == {"a": {"b": {"c": 3, "d": True}, "e": "hello"}, "x": [1, 2]}


def test_bad_overrides_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        parse_overrides(["train.lr", "=3", "a..b=1", "ok=1", "v=[1,"])
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert [p.split(":")[0] for p in problems] == [
        "override 'train.lr'", "override '=3'", "override 'a..b=1'", "override 'v=[1,'"]


def test_overrides_win_and_coerce(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        train:
          lr: 0.5
          batch_size: 4
        strategy:
          name: fedadam
        """)
    scenario = load_scenario(path, ["train.lr=1e-4", "strategy.eta=0.1", "strategy.tau=1e-3"])
    assert scenario.train.lr == 1e-4 and isinstance(scenario.train.lr, float)
    assert scenario.train.batch_size == 4
    assert scenario.strategy == StrategyConfig(name="fedadam", options={"eta": 0.1, "tau": 1e-3})


def test_exponent_floats_in_yaml_are_floats(tmp_path: Path) -> None:
    """PyYAML alone reads `1e-4` as a string; the loader reads it as a float, also in plug-in options."""
    scenario = load_scenario(write(tmp_path, "train: {lr: 1e-4}\nstrategy: {eta: 3e-2}\n"))
    assert scenario.train.lr == 1e-4
    assert scenario.strategy.options["eta"] == 0.03


def test_override_problems_join_the_schema_problems() -> None:
    problems = problems_of({"train": {"lr": 0}}, ("nonsense",))
    assert len(problems) == 2 and problems[0].startswith("override 'nonsense'")
    assert problems[1] == "train.lr: got 0.0, must be > 0"


# --- ${ENV} -----------------------------------------------------------------------------------------


def test_env_expansion_with_and_without_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDRAY_DATA", "/data/digits")
    monkeypatch.setenv("FEDRAY_ROUNDS", "7")
    monkeypatch.delenv("FEDRAY_OUT", raising=False)
    scenario = scenario_from_dict({
        "data": {"root": "${FEDRAY_DATA}"},
        "output": {"root": "${FEDRAY_OUT:-/tmp/runs}/${FEDRAY_ROUNDS}"},
        "federation": {"rounds": "${FEDRAY_ROUNDS}"},
    })
    assert scenario.data.root == "/data/digits"
    assert scenario.output.root == "/tmp/runs/7"
    assert scenario.federation.rounds == 7


def test_exact_reference_keeps_numbers_and_bools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("N", "3")
    monkeypatch.setenv("FLAG", "false")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET_X", raising=False)
    raw = {"a": ["${N}", "x${N}"], "b": "${FLAG}", "c": "${UNSET_X:-0.5}", "d": "${EMPTY:-dflt}"}
    value, problems = expand_env(raw)
    assert problems == []
    assert value == {"a": [3, "x3"], "b": False, "c": 0.5, "d": "dflt"}  # empty takes the default too


def test_unset_variable_is_a_problem_naming_field_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDRAY_DATA", raising=False)
    monkeypatch.delenv("FEDRAY_OTHER", raising=False)
    problems = problems_of({"data": {"root": "${FEDRAY_DATA}"}, "output": {"root": "${FEDRAY_OTHER}/x"}})
    template = "{}: environment variable {} is not set; export it or write ${{{}:-/some/default}}"
    assert problems == [template.format("data.root", "FEDRAY_DATA", "FEDRAY_DATA"),
                        template.format("output.root", "FEDRAY_OTHER", "FEDRAY_OTHER")]
    assert problems[0] == ("data.root: environment variable FEDRAY_DATA is not set; export it or write "
                           "${FEDRAY_DATA:-/some/default}")


# --- files ------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_scenario(missing)
    (message,) = info.value.problems
    assert "does not exist" in message and "ls scenarios/" in message and str(missing) in message


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntrain:\n  lr: [1, 2\nseed: 3\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    (message,) = info.value.problems
    assert message.startswith("YAML syntax error") and "line 4" in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_scenario(write(tmp_path, "- a\n- b\n"))
    assert info.value.problems[0].startswith("top level: got a list")


def test_round_trip_through_dump_and_load(tmp_path: Path) -> None:
    original = scenario_from_dict({
        "name": "1e-4",  # a string that looks like a float must stay a string
        "seed": 3,
        "data": {"root": "/d", "max_train_samples": 100, "shuffle": True},
        "lora": {"modules_to_save": ["multi_modal_projector", "lm_head"]},
        "train": {"lr": 1e-4, "local_steps": None, "local_epochs": 1.5},
        "strategy": {"name": "fedadam", "eta": 0.01, "betas": [0.9, 0.99], "name2": "x"},
        "model": {"dtype": "bfloat16", "tiny": {"patch_size": 4}},
    })
    path = tmp_path / "out" / "resolved.yaml"
    dump_scenario(original, path)
    assert load_scenario(path) == original
    plain = yaml.safe_load(path.read_text())  # a plain YAML-safe document, no python tags
    assert plain["lora"]["modules_to_save"] == ["multi_modal_projector", "lm_head"]
    assert scenario_to_dict(original)["strategy"] == {
        "name": "fedadam", "options": {"eta": 0.01, "betas": [0.9, 0.99], "name2": "x"}}


# --- semantic checks --------------------------------------------------------------------------------


def test_registered_semantic_checks_join_the_error() -> None:
    @register_semantic_check
    def known_strategy(s: Scenario) -> list[str]:
        return [] if s.strategy.name in {"fedavg", "fedprox"} else [
            f"strategy.name: unknown strategy {s.strategy.name!r}; known: fedavg, fedprox"]

    register_semantic_check(known_strategy)  # registering twice runs it once
    assert load_module.SEMANTIC_CHECKS == [known_strategy]
    assert scenario_from_dict({"strategy": {"name": "fedprox"}}).strategy.name == "fedprox"
    problems = problems_of({"strategy": {"name": "fedsgd"}}, ("bad-override",))
    assert problems == [
        "override 'bad-override': expected section.field=value, e.g. train.lr=1e-4",
        "strategy.name: unknown strategy 'fedsgd'; known: fedavg, fedprox",
    ]
