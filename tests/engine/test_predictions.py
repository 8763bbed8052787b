"""eval.save_predictions: each evaluated round's test answers as JSON lines, one file per round."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

from fedray.config.schema import EvalConfig
from fedray.data.federated import EvalSet
from fedray.data.prompts import default_style
from fedray.data.schema import samples_to_table
from fedray.engine.evaluation import Evaluator
from fedray.engine.predictions import PredictionLog, prediction_rounds, predictions_path, read_predictions
from fedray.engine.tasks import EvalShard


def _test_set() -> EvalSet:
    rows = [{"id": f"s{i}", "image": b"png" if i % 2 else None, "text": f"caption {i}",
             "question": "Is it hateful?", "choices": ["no", "yes"], "answer": ["no", "yes"][i % 2],
             "label": i % 2, "task": "meme", "source": "test"} for i in range(4)]
    return EvalSet(name="test", table=samples_to_table(rows), label_names=())


class FakePool:
    """Answers every row with the next of ``answers``; records what it was asked."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def evaluate(self, state_ref, set_name, n, timeout_s, condition, score_options=False, on_rows=None):
        self.calls.append((set_name, condition))
        return EvalShard(generations=list(self.answers[:n]))


def _evaluator(tmp_path, answers, save=True, **cfg):
    data = SimpleNamespace(tests=[_test_set()], validation=None)
    config = replace(EvalConfig(), save_predictions=save, option_scores=False, **cfg)
    return Evaluator(config, data, FakePool(answers), default_style(), tmp_path)


def test_a_round_writes_every_test_row_with_prompt_answer_and_correctness(tmp_path):
    evaluator = _evaluator(tmp_path, ["(B) yes", "(B) yes", "maybe", "B"], conditions=("full", "text_only"))
    metrics = evaluator.test(state_ref=None)
    assert evaluator.write_predictions(3) == predictions_path(tmp_path, 3)
    records = list(read_predictions(tmp_path, 3))
    assert len(records) == 8 and {r["condition"] for r in records} == {"full", "text_only"}
    full = [r for r in records if r["condition"] == "full"]
    assert [r["id"] for r in full] == ["s0", "s1", "s2", "s3"]
    assert [r["correct"] for r in full] == [False, True, False, True]
    assert [r["valid"] for r in full] == [True, True, False, True]
    assert metrics["invalid_rate"] == 0.25 and metrics["accuracy"] == 0.5  # the same reading as the metrics
    assert all(r["round"] == 3 and r["set"] == "test" for r in records)
    assert full[1]["prompt"].startswith("<image>\n") and "caption 1" in full[1]["prompt"]
    text_only = [r for r in records if r["condition"] == "text_only"]
    assert not any(r["prompt"].startswith("<image>") for r in text_only)  # the image removed, as evaluated
    assert evaluator.write_predictions(4) is None  # nothing evaluated since: no file
    assert prediction_rounds(tmp_path) == [3]


def test_nothing_is_collected_or_written_by_default(tmp_path):
    evaluator = _evaluator(tmp_path, ["(A) no"] * 4, save=False)
    evaluator.test(state_ref=None)
    assert evaluator.write_predictions(1) is None and not (tmp_path / "predictions").exists()


def test_several_adapters_in_a_round_are_told_apart_and_a_round_is_rewritten_whole(tmp_path):
    log = PredictionLog(tmp_path)
    for client in range(2):
        log.start_adapter()
        log.add("test", "full", [{"id": "a", "generated": str(client), "valid": True}])
    log.write(1)
    assert [(r["client"], r["generated"]) for r in read_predictions(tmp_path, 1)] == [(0, "0"), (1, "1")]
    log.add("test", "full", [{"id": "a", "generated": "again", "valid": False}])
    path = log.write(1)  # a resumed run evaluating round 1 again
    assert [json.loads(line)["generated"] for line in path.read_text().splitlines()] == ["again"]
    assert "client" not in json.loads(path.read_text())  # one adapter: no client field
    assert not list(path.parent.glob("*.tmp"))
