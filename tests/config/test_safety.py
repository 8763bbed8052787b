"""What a scenario reaches outside itself: run name, output root, cluster address, environment; upper
bounds and select_metric (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedray.config.load import scenario_from_dict
from fedray.config.safety import address_problems, directory_problems, name_problems
from fedray.errors import ConfigError


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(raw)
    return info.value.problems


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".", "tab\there", "n" * 151, " "])
def test_names_that_are_not_one_plain_file_name(name: str) -> None:
    (problem,) = name_problems(name)
    assert problem.startswith("name: ")


def test_ordinary_names_pass() -> None:
    assert name_problems("hateful_memes-aligned-a0.5") == [] and name_problems("n" * 150) == []


def test_output_root_a_file_or_under_one(tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("x")
    assert "is a file" in directory_problems(str(blocker), "output.root")[0]
    assert "which is a file" in directory_problems(str(blocker / "runs"), "output.root")[0]
    assert directory_problems(str(tmp_path / "new" / "runs"), "output.root") == []


def test_output_root_on_a_kernel_file_system() -> None:
    (problem,) = problems({"output": {"root": "/proc/runs"}})
    assert problem.startswith("output.root:") and "kernel file system" in problem


def test_output_root_with_a_component_too_long(tmp_path: Path) -> None:
    (problem,) = directory_problems(str(tmp_path / ("d" * 300)), "--run-dir")
    assert problem.startswith("--run-dir:") and "255" in problem


@pytest.mark.parametrize("address, ok", [("10.0.0.5:6379", True), ("ray://head:10001", True), ("auto", True),
                                         ("[::1]:6379", True), ("head", False), ("h:0", False),
                                         ("h:70000", False), ("a b:1", False)])
def test_cluster_address_form(address: str, ok: bool) -> None:
    assert (address_problems(address) == []) is ok


def test_only_fedray_variables_and_locations_expand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("FEDRAY_NAME", "fine")
    assert scenario_from_dict({"name": "${FEDRAY_NAME}"}).name == "fine"
    (problem,) = problems({"name": "${SECRET_TOKEN}"})
    assert "hunter2" not in problem
    assert problem.startswith("name: ${SECRET_TOKEN} is not expanded") and "FEDRAY_SECRET_TOKEN" in problem


def test_home_is_allowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert scenario_from_dict({"output": {"root": "${HOME}/runs"}}).output.root == f"{tmp_path}/runs"


@pytest.mark.parametrize("field, value, bound", [
    ("federation.rounds", 10**12, "<= 1,000,000"), ("resources.torch_threads", 10**6, "<= 1024"),
    ("federation.round_timeout_s", 1e300, "<= 10,000,000"), ("lora.rank", 10**6, "<= 65,536"),
])
def test_upper_bounds_where_a_value_can_only_be_a_mistake(field: str, value: float, bound: str) -> None:
    section, key = field.split(".")
    (problem,) = problems({section: {key: value}})
    assert problem.startswith(f"{field}: got") and bound in problem


@pytest.mark.parametrize("eval_cfg, words", [
    ({"select_metric": "acuracy"}, "did you mean 'accuracy'"),
    ({"select_metric": "loss"}, "not a metric the evaluation produces"),
    ({"select_metric": "fedmllm_f1"}, "add fedmllm to eval.protocol"),
    ({"select_metric": "auc", "option_scores": False}, "eval.option_scores is false"),
])
def test_select_metric_must_be_produced(eval_cfg: dict, words: str) -> None:
    found = problems({"eval": eval_cfg})
    assert any(p.startswith("eval.select_metric:") and words in p for p in found), found


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "auc", "accuracy_open", "accuracy_qtype/Organ",
                                    "choice/accuracy", "vqa/accuracy_closed"])
def test_metrics_the_evaluation_produces_are_accepted(metric: str) -> None:
    assert scenario_from_dict({"eval": {"select_metric": metric}}).eval.select_metric == metric


def test_fedmllm_metric_with_its_protocol() -> None:
    cfg = {"select_metric": "fedmllm_accuracy_qtype/yes", "protocol": ["strict", "fedmllm"]}
    assert scenario_from_dict({"eval": cfg}).eval.select_metric == cfg["select_metric"]


def test_regexes_are_checked_at_load_time() -> None:
    found = problems({"lora": {"target_modules": "([", "trainable": ["ok", "("]}})
    assert [p.split(":")[0] for p in found] == ["lora.target_modules", "lora.trainable[1]"]
    assert all("is not a regular expression" in p for p in found)


def test_paths_with_a_nul_or_an_overlong_name() -> None:
    assert "NUL" in directory_problems("a\x00b", "output.root")[0]
    import fedray.checks  # noqa: F401  (registers check_paths, which must not raise on ENAMETOOLONG)

    found = problems({"data": {"root": "x" * 300}})
    assert any(p.startswith("data.root:") for p in found)


def test_empty_eval_conditions() -> None:
    assert problems({"eval": {"conditions": []}}) == [
        "eval.conditions: empty, so nothing would be tested; give at least full"]


def test_sweep_name_that_would_escape_its_storage() -> None:
    from fedray.tune.space import load_space

    sweep = Path(__file__).resolve().parents[2] / "tune_spaces" / "mini-asha.yaml"
    with pytest.raises(ConfigError) as info:
        load_space(sweep, ["name=../../elsewhere"])
    assert any(p.startswith("name: '../../elsewhere' is not a plain file name") for p in info.value.problems)
