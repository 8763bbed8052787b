import math

import pytest

from fedray.client.vqa import normalize_vqa_answer, vqa_exact_match, vqa_metrics
from fedray.errors import DataError


@pytest.mark.parametrize("text, expected", [
    ("Yes", "yes"),
    ("  Yes!  ", "yes"),
    ("Two", "2"),
    ("none", "0"),
    ("ten.", "10"),
    ("The lungs.", "lungs"),
    ("a   cat", "cat"),
    ("an apple", "apple"),
    ("3.5", "3.5"),
    ("3.5 cm.", "3.5 cm"),
    ("about .5 cm", "about .5 cm"),
    ("1,000", "1000"),
    ("left, right", "left right"),
    ("left/right", "left right"),
    ("t-shirt", "t shirt"),
    ("x ray", "xray"),
    ("X-Ray", "xray"),
    ("an x-ray of the chest", "xray of chest"),
    ("chest x-rays", "chest xrays"),
    ("dont", "don't"),
    ("isnt it", "isn't it"),
    ("don't", "don't"),
    ("its", "its"),  # a real word, not rewritten
    ("e.g. liver", "eg liver"),
    ("(right) lung", "right lung"),
    ("", ""),
])
def test_normalize_vqa_answer(text, expected):
    assert normalize_vqa_answer(text) == expected


@pytest.mark.parametrize("pred, answer, same", [
    ("Two", "2", True),
    ("the liver", "Liver.", True),
    ("X-ray", "xray", True),
    ("none", "0", True),
    ("yes", "no", False),
    ("3.5", "35", False),
    ("", "0", False),
    ("left lung", "right lung", False),
])
def test_vqa_exact_match(pred, answer, same):
    assert vqa_exact_match(pred, answer) is same


def test_vqa_metrics_by_answer_and_question_type():
    out = vqa_metrics(
        predictions=["yes", "Two", "liver", "Yes."],
        answers=["Yes", "2", "the heart", "yes"],
        answer_types=["CLOSED", "open", "OPEN", "closed"],
        question_types=["PRES", "COUNT", "ORGAN", "PRES"],
    )
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["accuracy_closed"] == pytest.approx(1.0)
    assert out["accuracy_open"] == pytest.approx(0.5)
    assert (out["n"], out["n_open"], out["n_closed"]) == (4, 2, 2)
    assert out["by_question_type"] == {"COUNT": 1.0, "ORGAN": 0.0, "PRES": 1.0}


def test_vqa_metrics_missing_type_is_nan_and_no_question_types_no_breakdown():
    out = vqa_metrics(["a dog", "cat"], ["dog", "dog"], ["open", "open"])
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["accuracy_open"] == pytest.approx(0.5)
    assert math.isnan(out["accuracy_closed"]) and out["n_closed"] == 0
    assert "by_question_type" not in out


def test_vqa_metrics_skips_rows_without_question_type_in_breakdown():
    out = vqa_metrics(["yes", "no"], ["yes", "yes"], ["closed", "closed"], ["PRES", None])
    assert out["by_question_type"] == {"PRES": 1.0}
    assert out["accuracy"] == pytest.approx(0.5)


def test_vqa_metrics_empty_is_nan():
    out = vqa_metrics([], [], [])
    assert math.isnan(out["accuracy"]) and out["n"] == 0


def test_vqa_metrics_rejects_unknown_answer_type_and_length_mismatch():
    with pytest.raises(DataError, match="yes/no"):
        vqa_metrics(["yes"], ["yes"], ["yes/no"])
    with pytest.raises(ValueError):
        vqa_metrics(["yes", "no"], ["yes"], ["closed"])
