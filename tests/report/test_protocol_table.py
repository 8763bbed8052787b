"""The report sets the strict and fedmllm protocols side by side, at each run's selected round."""

from __future__ import annotations

from pathlib import Path

from fedray.cli.main import main
from fedray.config import scenario_from_dict
from fedray.config.load import dump_scenario
from fedray.engine.history import HistoryWriter, RoundRecord
from fedray.report.tables import find_runs, load_run, method_of, protocol_table


def make_run(path: Path, evals: list[dict], validation: list[float], strategy: dict | None = None,
             seed: int = 0) -> Path:
    """Round r has test metrics evals[r-1] and validation AUC validation[r-1]."""
    path.mkdir(parents=True)
    raw = {"name": "hm-aligned", "seed": seed, "strategy": strategy or {"name": "fedavg"},
           "eval": {"select_metric": "auc", "protocol": ["strict", "fedmllm"]}}
    dump_scenario(scenario_from_dict(raw), path / "config.yaml")
    writer = HistoryWriter(path / "history.jsonl")
    for r, (test, val) in enumerate(zip(evals, validation), start=1):
        writer.append(RoundRecord(server_round=r, eval=test, validation={"auc": val}))
    return path


def test_protocol_values_come_from_the_selected_round(tmp_path):
    first = {"accuracy": 0.5, "auc": 0.6, "fedmllm_accuracy": 0.55, "fedmllm_auc": 0.5}
    second = {"accuracy": 0.7, "auc": 0.8, "macro_f1": 0.65, "fedmllm_accuracy": 0.75, "fedmllm_auc": 0.7,
              "fedmllm_f1": 0.6, "fedmllm_fallback_rate": 0.1}
    make_run(tmp_path / "a", [first, second, first], [0.4, 0.9, 0.5])
    make_run(tmp_path / "b", [first, second], [0.9, 0.5], seed=1)
    runs = [load_run(p) for p in find_runs([tmp_path])]
    assert runs[0].protocol_values == {k: second[k] for k in
                                       ("accuracy", "fedmllm_accuracy", "macro_f1", "fedmllm_f1", "auc",
                                        "fedmllm_auc")}
    rows, columns = protocol_table(runs)
    assert columns == ["accuracy", "fedmllm_accuracy", "macro_f1", "fedmllm_f1", "auc", "fedmllm_auc"]
    (row,) = rows
    assert (row["method"], row["scenario"], row["runs"]) == ("fedavg", "hm-aligned", 2)
    assert row["auc"] == "0.700 ± 0.100" and row["fedmllm_auc"] == "0.600 ± 0.100"
    assert row["macro_f1"] == "0.650"  # the other run's selected round has no macro_f1


def test_without_fedmllm_metrics_there_is_no_protocol_table(tmp_path):
    make_run(tmp_path / "a", [{"accuracy": 0.5, "auc": 0.6}], [0.4])
    assert protocol_table([load_run(tmp_path / "a")]) == ([], [])


def test_report_command_writes_the_protocol_table(tmp_path, capsys):
    make_run(tmp_path / "runs" / "a", [{"auc": 0.8, "fedmllm_auc": 0.7}], [0.9],
             strategy={"name": "fedadagrad", "variant": "fedmllm"})
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "protocols.md").read_text()
    assert "| method | scenario | runs | auc | fedmllm_auc |" in text
    assert "| fedadagrad-fedmllm | hm-aligned | 1 | 0.800 | 0.700 |" in text
    assert "side by side" in capsys.readouterr().out


def test_a_non_standard_variant_is_part_of_the_method():
    config = {"strategy": {"name": "fedadagrad", "options": {"variant": "fedmllm"}},
              "objective": {"name": "adaptive_prox"}}
    assert method_of(config) == "fedadagrad-fedmllm+adaptive_prox"
    assert method_of({"strategy": {"name": "fedadam", "variant": "standard"}}) == "fedadam"
