"""Tests for fedray.config.paths and fedray.config.yamlio: the dotted paths, merges, overrides and YAML
rules that the scenario loader and the sweep loader share."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedray.config import paths
from fedray.config.paths import (
    collect_overrides,
    deep_merge,
    field_paths,
    flatten_fields,
    get_path,
    join_path,
    locate_field,
    nest,
    normalize_paths,
    resolve_field_path,
    set_paths,
    split_path,
)
from fedray.config.schema import StrategyConfig, TrainConfig
from fedray.config.yamlio import dump_yaml, parse_yaml, read_yaml_file
from fedray.errors import ConfigError
from fedray.tune import space


def test_split_join_and_nest() -> None:
    assert split_path("train.engine.name") == ["train", "engine", "name"]
    assert join_path("train", "engine", "name") == "train.engine.name"
    assert join_path("", "seed") == "seed"
    assert nest("a.b.c", 1) == {"a": {"b": {"c": 1}}}


def test_get_path() -> None:
    tree = {"train": {"lr": 0.1, "engine": {"name": "torch"}}, "seed": 3}
    assert get_path(tree, "train.engine.name") == "torch"
    assert get_path(tree, "seed") == 3
    assert get_path(tree, "train.nope", "default") == "default"
    assert get_path(tree, "seed.deeper") is None  # a value has no fields


def test_set_paths_replaces_fields_in_a_copy() -> None:
    tree = {"train": {"lr": 0.1, "batch_size": 8}, "strategy": {"name": "fedavg", "options": {"eta": 1}}}
    out = set_paths(tree, {"train.lr": 0.01, "strategy.options": {"beta1": 0.5}, "eval.every": 2})
    assert out == {"train": {"lr": 0.01, "batch_size": 8}, "strategy": {"name": "fedavg",
                   "options": {"beta1": 0.5}}, "eval": {"every": 2}}  # replaced, not merged
    assert tree["train"]["lr"] == 0.1 and tree["strategy"]["options"] == {"eta": 1}  # input untouched


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"train": {"lr": 0.1, "batch_size": 8}, "conditions": ["full"], "seed": 0}
    over = {"train": {"lr": 0.2}, "conditions": ["text_only"], "name": "x"}
    assert deep_merge(base, over) == {"train": {"lr": 0.2, "batch_size": 8}, "conditions": ["text_only"],
                                      "seed": 0, "name": "x"}
    assert base["train"]["lr"] == 0.1


def test_overrides_collect_every_problem_and_later_ones_win() -> None:
    tree, problems = collect_overrides(["train.lr=1e-4", " strategy . name =fedprox", "train.lr=2e-4",
                                        "x", "a..b=1", "v=[1,"])
    assert tree == {"train": {"lr": 2e-4}, "strategy": {"name": "fedprox"}}
    assert len(problems) == 3
    assert "'x'" in problems[0] and "'a..b=1'" in problems[1] and "not valid YAML" in problems[2]


def test_plugin_options_and_schema_leaves() -> None:
    assert resolve_field_path("strategy.eta") == ("strategy.options.eta", None)
    assert resolve_field_path("data.secondary.root") == ("data.secondary.root", None)
    assert locate_field("train.engine").kind == "section"
    assert locate_field("objective.options.mu").kind == "free"
    assert locate_field("train.lr") == ("train.lr", None, "leaf")
    assert "lora.rank is a value" in locate_field("lora.rank.x").problem
    assert "did you mean 'train.lr'" in locate_field("train.lrr").problem
    assert "not a dotted field path" in locate_field("train..lr").problem
    assert resolve_field_path("eta", root=StrategyConfig) == ("options.eta", None)  # any root section


def test_field_paths_list_sections_and_leaves() -> None:
    listed = field_paths(TrainConfig)
    assert listed[:2] == ["local_steps", "local_epochs"]
    assert "engine" in listed and "engine.name" in listed and "engine.options" in listed


def test_flatten_and_normalize_nested_and_dotted_keys() -> None:
    tree = {"train": {"lr": 0.1, "engine": {"name": "torch"}}, "strategy.eta": 0.5,
            "strategy": {"options": {"beta1": 0.9}}, "eval.conditions": ["full"], "train.nope": 1}
    assert list(flatten_fields(tree)) == [("train.lr", 0.1), ("train.engine.name", "torch"),
                                          ("strategy.eta", 0.5), ("strategy.options.beta1", 0.9),
                                          ("eval.conditions", ["full"]), ("train.nope", 1)]
    flat, problems = normalize_paths(tree, "overrides")
    assert flat == {"train.lr": 0.1, "train.engine.name": "torch", "strategy.options.eta": 0.5,
                    "strategy.options.beta1": 0.9, "eval.conditions": ["full"]}
    assert len(problems) == 1 and problems[0].startswith("overrides.train.nope: 'train.nope' is not")


def test_sweeps_use_the_shared_path_functions() -> None:
    # One implementation: the sweep loader imports these rather than keeping copies of its own.
    for name in ("set_paths", "deep_merge", "parse_overrides", "resolve_field_path", "flatten_fields",
                 "normalize_paths", "get_path"):
        assert getattr(space, name) is getattr(paths, name), name


def test_yaml_reads_exponent_floats_and_dumps_the_string_quoted(tmp_path: Path) -> None:
    assert parse_yaml("lr: 1e-4") == {"lr": 1e-4}
    text = dump_yaml({"lr": 1e-4, "tag": "1e-4"})
    assert parse_yaml(text) == {"lr": 1e-4, "tag": "1e-4"}
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml_file(tmp_path / "empty.yaml", "sweep file", "tune_spaces") == {}


def test_reading_a_missing_or_broken_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sweep file .* does not exist; .*`ls tune_spaces/`"):
        read_yaml_file(tmp_path / "nope.yaml", "sweep file", "tune_spaces")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="YAML syntax error: .* line 2"):
        read_yaml_file(tmp_path / "bad.yaml", "sweep file", "tune_spaces")
