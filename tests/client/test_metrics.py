import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from fedray.client.metrics import (
    classification_metrics,
    normalize,
    parse_answer,
    parse_choice,
    roc_auc,
    score_generations,
)
from fedray.data.prompts import choice_letter, format_choice
from fedray.errors import DataError

HATEFUL = ["not hateful", "hateful"]


# -- helpers kept for the engine ---------------------------------------------------------------------
def test_normalize_trims_one_trailing_period_and_case():
    assert normalize("  Seven. ") == "seven"
    assert normalize("yes..") == "yes."
    assert normalize("") == ""


def test_parse_answer():
    assert parse_answer(" Seven.", ["six", "seven"]) == "seven"
    assert parse_answer("seven or six", ["six", "seven"]) is None


# -- multiple-choice parsing ---------------------------------------------------------------------
def test_choice_letters_and_format():
    assert [choice_letter(i) for i in (0, 1, 7, 25)] == ["A", "B", "H", "Z"]
    assert format_choice(1, "hateful") == "(B) hateful"
    for bad in (-1, 26):
        with pytest.raises(ValueError):
            choice_letter(bad)


@pytest.mark.parametrize("generated", [
    "(B) hateful", "(b) Hateful", "  (B) hateful.  ", "(B)hateful", "B) hateful",
    "(B)", "(b).", "B", "b", "B)", "hateful", "Hateful.", "\n(B) hateful\n",
])
def test_parse_choice_accepts(generated):
    assert parse_choice(generated, HATEFUL) == 1


@pytest.mark.parametrize("generated", ["(A) not hateful", "(A)", "A", "a)", "Not hateful"])
def test_parse_choice_accepts_first_option(generated):
    assert parse_choice(generated, HATEFUL) == 0


@pytest.mark.parametrize("generated", [
    "", "   ", ".",
    "(C)", "C", "c)",  # past the two options
    "Because it is hateful", "Both", "The answer is (B)", "B hateful",  # letter or text inside free text
    "(A) (B)", "A or B", "(B) hateful (A) not hateful", "hateful, not hateful",  # two options
    "(A) hateful", "(B) not hateful",  # letter contradicts its text
    "(B) hateful and offensive", "hateful..", "(B", "((B))",
])
def test_parse_choice_rejects(generated):
    assert parse_choice(generated, HATEFUL) is None


def test_parse_choice_with_eight_options_and_ambiguity():
    eight = [f"class {i}" for i in range(8)]
    assert parse_choice("(H) class 7", eight) == 7
    assert parse_choice("(I)", eight) is None
    # Option texts that are letters themselves: "a" is option B's text and letter A, so it is ambiguous.
    assert parse_choice("a", ["b", "a"]) is None
    assert parse_choice("(A)", ["b", "a"]) == 0
    # Choices already lettered still parse.
    assert parse_choice("(B) yes", ["(A) no", "(B) yes"]) == 1
    assert parse_choice("(b)", ["(A) no", "(B) yes"]) == 1


# -- classification metrics -----------------------------------------------------------------------
def _sklearn_macro_f1(predictions, targets):
    invalid = max(targets + [p for p in predictions if p is not None]) + 1
    mapped = [invalid if p is None else p for p in predictions]
    labels = sorted(set(targets) | {p for p in predictions if p is not None})
    return f1_score(targets, mapped, labels=labels, average="macro", zero_division=0)


def test_classification_metrics_hand_computed():
    predictions, targets = [0, None, 1, 0, None], [0, 0, 1, 1, 2]
    out = classification_metrics(predictions, targets, num_classes=3)
    # class 0: tp 1, fp 1, fn 1 → 1/2; class 1: tp 1, fn 1 → 2/3; class 2: tp 0, fn 1 → 0
    assert out == {"accuracy": pytest.approx(0.4), "macro_f1": pytest.approx((1 / 2 + 2 / 3 + 0) / 3),
                   "invalid_rate": pytest.approx(0.4), "n": 5.0}
    assert out["macro_f1"] == pytest.approx(_sklearn_macro_f1(predictions, targets))


def test_invalid_is_never_a_real_class():
    # The reference maps parse failures to index 2; here they are wrong even when the truth is class 2.
    out = classification_metrics([None, None, 2], [2, 2, 2], num_classes=3)
    assert out["accuracy"] == pytest.approx(1 / 3)
    assert out["macro_f1"] == pytest.approx(0.5)  # class 2 only: tp 1, fn 2 → 2/4
    assert out["invalid_rate"] == pytest.approx(2 / 3)


def test_absent_classes_are_left_out_of_the_mean():
    out = classification_metrics([0, 0], [0, 1], num_classes=4)
    assert out["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_classification_metrics_match_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    for trial in range(20):
        num_classes, n = int(rng.integers(2, 8)), int(rng.integers(1, 60))
        targets = rng.integers(0, num_classes, n).tolist()
        predictions = [None if rng.random() < 0.2 else int(rng.integers(0, num_classes)) for _ in range(n)]
        out = classification_metrics(predictions, targets, num_classes)
        assert out["macro_f1"] == pytest.approx(_sklearn_macro_f1(predictions, targets)), trial
        mapped = [-1 if p is None else p for p in predictions]
        assert out["accuracy"] == pytest.approx(np.mean(np.array(mapped) == np.array(targets)))
        assert out["invalid_rate"] == pytest.approx(predictions.count(None) / n)


def test_classification_metrics_empty_and_bad_input():
    out = classification_metrics([], [], num_classes=2)
    assert out["n"] == 0.0 and math.isnan(out["accuracy"]) and math.isnan(out["macro_f1"])
    with pytest.raises(ValueError):
        classification_metrics([0], [0, 1], num_classes=2)
    with pytest.raises(ValueError):
        classification_metrics([2], [0], num_classes=2)
    with pytest.raises(ValueError):
        classification_metrics([0], [3], num_classes=2)


# -- ROC-AUC --------------------------------------------------------------------------------------
@pytest.mark.parametrize("scores, targets, expected", [
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),
    ([0.5, 0.5, 0.9], [0, 1, 1], 0.75),  # one tie (half) and one win, over two pairs
    ([1.0, 1.0, 1.0, 1.0], [0, 1, 0, 1], 0.5),
    ([3.0, 2.0, 1.0], [1, 0, 0], 1.0),
    ([3.0, 2.0, 1.0], [0, 1, 1], 0.0),
    ([-np.inf, -2.0, np.inf], [0, 1, 1], 1.0),
])
def test_roc_auc_known_values(scores, targets, expected):
    assert roc_auc(scores, targets) == pytest.approx(expected)
    assert roc_auc(scores, targets) == pytest.approx(roc_auc_score(targets, np.clip(scores, -1e9, 1e9)))


def test_roc_auc_matches_sklearn_on_random_scores_with_ties():
    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(2, 200))
        targets = rng.integers(0, 2, n)
        if targets.min() == targets.max():
            targets[0] = 1 - targets[0]
        scores = rng.normal(size=n) + targets
        if trial % 2:
            scores = np.round(scores, 1)  # many ties
        assert roc_auc(scores.tolist(), targets.tolist()) == pytest.approx(roc_auc_score(targets, scores))


def test_roc_auc_hard_labels_equal_balanced_accuracy():
    # What the reference reports as "AUC": with 0/1 predictions it is (TPR + TNR) / 2.
    targets, preds = [0, 0, 0, 1, 1], [0, 1, 0, 1, 0]
    assert roc_auc(preds, targets) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_roc_auc_one_class_is_nan_and_bad_input_raises():
    assert math.isnan(roc_auc([0.1, 0.2], [1, 1]))
    assert math.isnan(roc_auc([], []))
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError):
        roc_auc([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError):
        roc_auc([0.1], [0, 1])


# -- score_generations ----------------------------------------------------------------------------
def _mc(label, **extra):
    return {"id": f"m{label}", "choices": HATEFUL, "label": label,
            "answer": format_choice(label, HATEFUL[label]), **extra}


def test_score_generations_multiple_choice():
    rows = [_mc(1), _mc(0), _mc(1), _mc(0)]
    out = score_generations(rows, ["(B) hateful", "(B)", "Because", "not hateful"], label_names=[])
    # class 0: tp 1, fn 1 (row 1) → 2/3; class 1: tp 1, fp 1 (row 1), fn 1 (row 2, invalid) → 1/2
    assert out == {"accuracy": pytest.approx(0.5), "macro_f1": pytest.approx((2 / 3 + 1 / 2) / 2),
                   "invalid_rate": pytest.approx(0.25), "n": 4.0}


def test_score_generations_multiple_choice_label_from_answer():
    rows = [{"id": "x", "choices": HATEFUL, "label": None, "answer": "(B) hateful"}]
    assert score_generations(rows, ["B"], label_names=[])["accuracy"] == 1.0
    rows[0]["answer"] = "maybe"
    with pytest.raises(DataError, match="maybe"):
        score_generations(rows, ["B"], label_names=[])


def test_score_generations_closed_vocabulary():
    names = ["zero", "one", "two"]
    rows = [{"id": str(i), "choices": None, "answer": names[t], "label": t}
            for i, t in enumerate([0, 1, 2, 2])]
    gens = ["zero", "One.", "three", "one"]
    out = score_generations(rows, gens, names)
    # class 0 → 1.0; class 1: tp 1, fp 1 → 2/3; class 2: fn 2 → 0.0
    assert out == {"accuracy": pytest.approx(0.5), "macro_f1": pytest.approx((1 + 2 / 3 + 0) / 3),
                   "invalid_rate": pytest.approx(0.25), "n": 4.0}


def test_score_generations_vqa():
    rows = [{"id": "a", "answer": "Yes", "answer_type": "CLOSED", "question_type": "PRES"},
            {"id": "b", "answer": "2", "answer_type": "OPEN", "question_type": "COUNT"},
            {"id": "c", "answer": "the heart", "answer_type": "OPEN", "question_type": "ORGAN"}]
    out = score_generations(rows, ["yes.", "two", "liver"], label_names=["yes", "no"])
    assert out == {"accuracy": pytest.approx(2 / 3), "accuracy_closed": 1.0, "accuracy_open": 0.5,
                   "n": 3.0, "n_open": 2.0, "n_closed": 1.0, "accuracy_qtype/COUNT": 1.0,
                   "accuracy_qtype/ORGAN": 0.0, "accuracy_qtype/PRES": 1.0}
    assert all(isinstance(v, float) for v in out.values())


def test_score_generations_mixed_rows_are_prefixed():
    rows = [_mc(1), _mc(0), {"id": "v", "answer": "yes", "answer_type": "closed"}]
    out = score_generations(rows, ["(B)", "(B)", "no"], label_names=[])
    assert out["accuracy"] == pytest.approx(1 / 3) and out["n"] == 3.0
    assert out["choice/accuracy"] == pytest.approx(0.5) and out["choice/invalid_rate"] == 0.0
    assert out["vqa/accuracy_closed"] == 0.0 and math.isnan(out["vqa/accuracy_open"])


def test_score_generations_rejects_unscorable_rows_and_mismatch():
    with pytest.raises(DataError, match="label_names"):
        score_generations([{"id": "z", "answer": "x"}], ["x"], label_names=[])
    with pytest.raises(DataError, match="label_names"):
        score_generations([{"id": "z", "answer": "four"}], ["x"], label_names=["zero"])
    with pytest.raises(ValueError):
        score_generations([_mc(0)], [], label_names=[])
