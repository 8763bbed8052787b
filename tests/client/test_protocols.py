"""Evaluation protocols: the reference's parse, failure mapping and metrics on known predictions, with the
numbers worked out by hand from the specification's formulas; strict unchanged; both side by side."""

from __future__ import annotations

import math

import pytest

from fedray.client.metrics import score_generations
from fedray.client.protocols import (
    EVAL_PROTOCOLS,
    fedmllm,
    fedmllm_choice_metrics,
    letter_pattern,
    parse_fedmllm_choice,
    score_protocols,
)
from fedray.client.vqa import normalize_vqa_answer_fedmllm, vqa_metrics_fedmllm
from fedray.config import scenario_from_dict
from fedray.errors import ConfigError

HM = ["not-hateful", "hateful"]
CRISIS = ["affected_individuals", "infrastructure_and_utility_damage", "injured_or_dead_people",
          "missing_or_found_people", "rescue_volunteering_or_donation_effort", "vehicle_damage",
          "other_relevant_information", "not_humanitarian"]


def rows(choices: list[str], labels: list[int]) -> list[dict]:
    return [{"id": i, "choices": choices, "answer": choices[y], "label": y, "answer_type": None}
            for i, y in enumerate(labels)]


@pytest.mark.parametrize("generated,options,expected", [
    ("(B) hateful", 2, 1),
    ("Answer: A", 2, 0),               # "Answer" is removed first
    ("The answer is (A)", 2, 0),
    ("Because it mocks a group", 2, 1),  # the first capital in range counts: "B"ecause
    ("hateful", 2, None),              # no capital A-G at all: falls back
    ("Hateful", 2, None),              # H lies outside A-G
    ("C", 2, None),                    # in the pattern but not an option of two
    ("C", 8, 2),
    ("(H) not_humanitarian", 8, 7),    # eight options widen the pattern to A-H
    ("( B )", 2, None),                # stripped of spaces, then parentheses: " B " is no letter
    ("", 2, None),
])
def test_the_references_parse(generated, options, expected):
    assert parse_fedmllm_choice(generated, options) == expected


def test_letter_pattern_spans_a_to_g_or_the_last_option():
    assert letter_pattern(2).pattern == "[( ]*[A-G][) ]*"
    assert letter_pattern(8).pattern == "[( ]*[A-H][) ]*"


def test_hateful_memes_numbers_from_the_formulas():
    # truth 1 0 1 0 1 0; parsed 1 0 fallback 1 fallback 0 → indices 1 0 2 1 2 0
    generations = ["(B) hateful", "(A) not-hateful", "Hateful", "(B)", "Answer: C", "A"]
    out = fedmllm(rows(HM, [1, 0, 1, 0, 1, 0]), generations, HM)
    assert out["fedmllm_accuracy"] == pytest.approx(3 / 6)
    # AUC of hard indices: positives score {1, 2, 2}, negatives {0, 1, 0}; of 9 pairs the positives win
    # 8 and tie 1 (1 vs 1): (8 + 0.5) / 9
    assert out["fedmllm_auc"] == pytest.approx(8.5 / 9)
    # macro F1 over classes {0, 1, 2}: class 0 2tp/(2tp+fp+fn) = 4/5, class 1 2/5, class 2 (never true) 0
    assert out["fedmllm_f1"] == pytest.approx((4 / 5 + 2 / 5 + 0) / 3)
    assert out["fedmllm_fallback_rate"] == pytest.approx(2 / 6)
    assert set(out) == {"fedmllm_accuracy", "fedmllm_auc", "fedmllm_f1", "fedmllm_fallback_rate"}


def test_auc_of_binary_hard_predictions_is_balanced_accuracy():
    truth, pred = [1, 1, 0, 0, 0], [1, 0, 0, 0, 1]
    out = fedmllm_choice_metrics(pred, truth, binary=True)
    assert out["auc"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # (TPR + TNR) / 2
    assert math.isnan(fedmllm_choice_metrics([0, 1], [1, 1], binary=True)["auc"])  # one class: undefined


def test_crisismmd_numbers_from_the_formulas():
    # truth 0 2 5 7 2 1 → parsed 0, B(ecause) 1, F 5, (H) 7, fallback 2, (B) 1
    generations = ["(A) affected_individuals", "Because of the flood", "F", "The answer is (H)",
                   "i cannot tell", "(B)"]
    out = fedmllm(rows(CRISIS, [0, 2, 5, 7, 2, 1]), generations, CRISIS)
    assert out["fedmllm_accuracy"] == pytest.approx(5 / 6)  # the fallback hits the true class 2
    # per class F1 over {0, 1, 2, 5, 7}: 1, 2/3 (tp 1, fp 1), 2/3 (tp 1, fn 1), 1, 1
    assert out["fedmllm_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3 + 1 + 1) / 5)
    assert out["fedmllm_fallback_rate"] == pytest.approx(1 / 6)
    assert "fedmllm_auc" not in out  # eight options: the reference reports F1 only


def test_the_references_vqa_normalisation():
    cases = {"Yes.": "yes", "the two": "2", "X-ray": "xray", "x ray": "xray", "50%": "50%",
             "left: kidney": "left: kidney", "(left)": "left", "a - b": "b", "1,000 cells": "1000 cells",
             "dont": "don't", "somebody'd": "somebodyd", "3.5 cm.": "3.5 cm", "T2 weighted": "t2 weighted"}
    for raw, expected in cases.items():
        assert normalize_vqa_answer_fedmllm(raw) == expected, raw
    assert normalize_vqa_answer_fedmllm("." * 40 + "x") == "." * 8 + "x"  # only 32 periods go


def test_vqa_rows_are_scored_by_exact_match_after_that_normalisation():
    vqa = [{"id": i, "choices": None, "answer": a, "answer_type": t, "question_type": q}
           for i, (a, t, q) in enumerate([("yes", "closed", "organ"), ("two", "open", "size"),
                                          ("50%", "open", "size")])]
    out = fedmllm(vqa, ["Yes.", "2", "50"], [])
    assert out["fedmllm_accuracy"] == pytest.approx(2 / 3)  # "50" is not "50%" for the reference
    assert out["fedmllm_accuracy_closed"] == 1.0 and out["fedmllm_accuracy_open"] == pytest.approx(0.5)
    assert out["fedmllm_accuracy_qtype/size"] == pytest.approx(0.5)
    assert vqa_metrics_fedmllm(["50"], ["50%"], ["open"])["accuracy"] == 0.0


def test_mixed_sets_and_rows_without_a_reference_counterpart():
    mixed = rows(HM, [1, 0]) + [{"id": 9, "choices": None, "answer": "yes", "answer_type": "closed"}]
    out = fedmllm(mixed, ["(B)", "(B)", "yes"], HM)
    assert out["fedmllm_accuracy"] == pytest.approx(2 / 3)
    assert out["choice/fedmllm_accuracy"] == 0.5 and out["vqa/fedmllm_accuracy"] == 1.0
    labels = [{"id": 0, "choices": None, "answer": "seven", "answer_type": None}]
    assert fedmllm(labels, ["seven"], ["six", "seven"]) == {}  # closed vocabulary, no options


def test_protocols_side_by_side_and_strict_unchanged():
    # strict: right, invalid, wrong ("hateful" names option B); fedmllm: right, B(ecause) right, fallback
    data, generations = rows(HM, [1, 1, 0]), ["(B) hateful", "Because", "hateful"]
    strict = score_generations(data, generations, HM)
    assert EVAL_PROTOCOLS.get("strict")(data, generations, HM) == strict
    both = score_protocols(("strict", "fedmllm"), data, generations, HM)
    assert {k: v for k, v in both.items() if not k.startswith("fedmllm_")} == strict
    assert both["accuracy"] == pytest.approx(1 / 3) and both["fedmllm_accuracy"] == pytest.approx(2 / 3)
    assert both["invalid_rate"] == pytest.approx(1 / 3)
    assert both["fedmllm_fallback_rate"] == pytest.approx(1 / 3)


def test_eval_protocol_in_the_schema():
    assert scenario_from_dict({}).eval.protocol == ("strict",)
    both = scenario_from_dict({"eval": {"protocol": ["strict", "fedmllm"]}})
    assert both.eval.protocol == ("strict", "fedmllm")
    only = scenario_from_dict({"eval": {"protocol": ["fedmllm"], "select_metric": "fedmllm_auc"}})
    assert only.eval.protocol == ("fedmllm",)
    for bad in ({"protocol": []}, {"protocol": ["strict", "strict"]}, {"protocol": ["fedmllm"]},
                {"protocol": ["lenient"]}):
        with pytest.raises(ConfigError):
            scenario_from_dict({"eval": bad})
