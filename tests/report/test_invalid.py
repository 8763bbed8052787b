"""fedray report RUN_DIR --invalid [N]: the most common invalid answers of the last evaluated round."""

from __future__ import annotations

from fedray.cli.main import main
from fedray.config import scenario_from_dict
from fedray.config.load import dump_scenario
from fedray.engine.predictions import PredictionLog
from fedray.report.invalid import invalid_answers


def _run_dir(path, rounds):
    path.mkdir(parents=True, exist_ok=True)
    dump_scenario(scenario_from_dict({"name": "inv"}), path / "config.yaml")
    (path / "history.jsonl").write_text("")
    log = PredictionLog(path)
    for server_round, generations in rounds.items():
        log.add("test", "full", [{"id": str(i), "generated": g, "valid": g.startswith("(")}
                                 for i, g in enumerate(generations)])
        log.write(server_round)
    return path


def test_the_last_round_is_counted_most_common_first(tmp_path):
    run = _run_dir(tmp_path, {0: ["zzz"] * 5, 2: ["(A) x", "Which digit", " Which digit ", "seven", "(B) y"]})
    report = invalid_answers(run, top=1)
    assert (report.server_round, report.answers, report.invalid) == (2, 5, 3)
    assert report.top == [("Which digit", 2)]
    assert invalid_answers(run, server_round=0).top == [("zzz", 5)]


def test_the_cli_prints_the_view(tmp_path, capsys):
    run = _run_dir(tmp_path, {1: ["(A) x", "seven", "seven", "eight"]})
    assert main(["report", str(run), "--invalid", "5"]) == 0
    out = capsys.readouterr().out
    assert "round 1: 3 of 4 answers invalid (75.0%)" in out
    assert out.index("'seven'") < out.index("'eight'")


def test_a_run_without_predictions_says_how_to_get_them(tmp_path, capsys):
    run = _run_dir(tmp_path / "off", {})
    assert main(["report", str(run), "--invalid"]) == 2
    assert "eval.save_predictions=true" in capsys.readouterr().err
    _run_dir(tmp_path / "on", {1: ["seven"]})
    assert main(["report", str(tmp_path), "--invalid"]) == 0  # a sweep mixing both: a note for the other
    out = capsys.readouterr().out
    assert "1 of 1 answers invalid" in out and "eval.save_predictions was off" in out
