"""Prediction records: what each parser read from each generation, and whether it was right."""

from __future__ import annotations

import pytest

from fedray.client.predictions import prediction_records

CHOICE = {"id": "c1", "choices": ["not hateful", "hateful"], "answer": "hateful", "label": 1}
LABEL = {"id": "l1", "choices": None, "answer": "seven", "label": 7}
VQA = {"id": "v1", "choices": None, "answer": "Two", "label": None, "answer_type": "OPEN"}
DIGITS = tuple(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def test_choice_rows_are_read_by_the_strict_parser_and_the_reference_one():
    gens = ["(B) hateful", "B", "(A) not hateful", "I think it is hateful"]
    records = prediction_records([CHOICE] * 4, gens, (), ["p"] * 4, protocols=("strict", "fedmllm"))
    assert [r["parsed"] for r in records] == ["(B) hateful", "(B) hateful", "(A) not hateful", None]
    assert [r["valid"] for r in records] == [True, True, True, False]
    assert [r["correct"] for r in records] == [True, True, False, False]
    # the reference reads the first capital letter A-G: "I" is not one, so it falls back to index 2 (wrong)
    assert [r["fedmllm_parsed"] for r in records] == [1, 1, 0, None]
    assert [r["fedmllm_correct"] for r in records] == [True, True, False, False]
    assert records[0]["id"] == "c1" and records[0]["kind"] == "choice" and records[0]["prompt"] == "p"
    assert records[0]["answer"] == "hateful" and records[3]["generated"] == "I think it is hateful"


def test_label_and_vqa_rows_and_no_fedmllm_fields_without_that_protocol():
    rows, gens = [LABEL, LABEL, VQA, VQA, VQA], ["Seven.", "7", "two", "2 cats", "..."]
    records = prediction_records(rows, gens, DIGITS)
    assert [r["kind"] for r in records] == ["label", "label", "vqa", "vqa", "vqa"]
    assert [r["parsed"] for r in records] == ["seven", None, "2", "2 cats", None]
    assert [r["valid"] for r in records] == [True, False, True, True, False]
    assert [r["correct"] for r in records] == [True, False, True, False, False]
    assert all("fedmllm_parsed" not in r and r["prompt"] is None for r in records)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 generations"):
        prediction_records([CHOICE], ["A", "B"], ())
