"""Strict answer parsing and task metrics: multiple choice, closed vocabulary, open-ended VQA.

A generation counts only if, after trimming whitespace, one trailing period and case, it *is* one of the
task's answers; anything else lands in an "invalid" bucket that is reported as its own rate and counts as
wrong. It is never mapped to a real class (the reference code maps parse failures to class 2, which is a
real CrisisMMD class) and never fuzzily matched (a stray capital in "Because ..." is not option B).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from fedray.client.vqa import vqa_metrics
from fedray.errors import DataError

# "(b) text", "b) text" (text optional) or a bare "b", on normalised (lower-case) output.
_LETTERED = re.compile(r"(?:\((?P<paren>[a-z])\)|(?P<half>[a-z])\))\s*(?P<rest>.*)|(?P<bare>[a-z])")


def normalize(text: str) -> str:
    """``text`` trimmed, without one trailing period, lower-cased."""
    text = text.strip()
    return (text[:-1] if text.endswith(".") else text).strip().lower()


def parse_answer(generated: str, valid_answers: Iterable[str]) -> str | None:
    """The answer ``generated`` names, or None when it is not exactly one of ``valid_answers``."""
    candidate = normalize(generated)
    return candidate if candidate in {normalize(a) for a in valid_answers} else None


# -- multiple choice -------------------------------------------------------------------------------
def parse_choice(generated: str, choices: Sequence[str]) -> int | None:
    """The index of the option ``generated`` names, or None (invalid).

    Accepted (any case, ignoring surrounding whitespace and one trailing period): "(B) text", "B) text",
    "(B)", "B)", "B", or exactly one option's text. Rejected: a letter past the options, a letter whose
    text is another option's, any extra words, and output that names two different options.
    """
    text = normalize(generated)
    if not text:
        return None
    options = [normalize(c) for c in choices]
    named = {i for i, option in enumerate(options) if option == text}
    lettered = _LETTERED.fullmatch(text)
    if lettered:
        i = ord(lettered["paren"] or lettered["half"] or lettered["bare"]) - ord("a")
        if i < len(options) and lettered["rest"] in (None, "", options[i]):
            named.add(i)
    return named.pop() if len(named) == 1 else None


# -- classification metrics ------------------------------------------------------------------------
def classification_metrics(predictions: Sequence[int | None], targets: Sequence[int],
                           num_classes: int) -> dict[str, float]:
    """``accuracy``, ``macro_f1``, ``invalid_rate`` and ``n``; a None prediction is invalid.

    An invalid prediction is wrong, a false negative for its true class and a false positive for none.
    ``macro_f1`` averages per-class F1 over the classes present in targets or predictions (as scikit-learn
    does with ``labels`` = those classes); it is NaN, like the rates, when there are no samples.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    pred = np.array([-1 if p is None else p for p in predictions], dtype=np.int64)  # -1: invalid
    true = np.asarray(targets, dtype=np.int64).reshape(-1)
    if ((true < 0) | (true >= num_classes)).any() or (pred >= num_classes).any() or (pred < -1).any():
        raise ValueError(f"classes must lie in 0..{num_classes - 1}; got targets "
                         f"{sorted(set(true.tolist()))} and predictions {sorted(set(pred.tolist()) - {-1})}")
    n = len(true)
    if n == 0:
        return {"accuracy": math.nan, "macro_f1": math.nan, "invalid_rate": math.nan, "n": 0.0}
    return {"accuracy": float((pred == true).mean()),
            "macro_f1": _macro_f1(pred, true),
            "invalid_rate": float((pred == -1).mean()),
            "n": float(n)}


def _macro_f1(pred: np.ndarray, true: np.ndarray) -> float:
    """scikit-learn's macro F1 over the classes present; ``-1`` (invalid) is in no class's labels, so an
    invalid answer is a false negative of its true class and a false positive of none."""
    from sklearn.metrics import f1_score

    present = np.union1d(true, pred[pred >= 0])
    return float(f1_score(true, pred, labels=present, average="macro", zero_division=0.0))


def roc_auc(scores: Sequence[float], targets: Sequence[int]) -> float:
    """Binary ROC-AUC of continuous ``scores`` (higher = class 1) by scikit-learn; NaN unless both classes
    are present.

    The scores are replaced by their dense ranks first: the AUC depends only on their order (ties count
    half), and option log-likelihood margins may be ±inf, which scikit-learn refuses.
    """
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(targets).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} targets")
    if not np.isin(y, (0, 1)).all() or np.isnan(s).any():
        raise ValueError("roc_auc needs targets in {0, 1} and scores that are not NaN")
    if y.size == 0 or y.min() == y.max():
        return math.nan
    _, ranks = np.unique(s, return_inverse=True)  # same order and ties; ±inf become ordinary ranks
    return float(roc_auc_score(y, ranks))


# -- one task's generations ------------------------------------------------------------------------
def score_generations(rows: Sequence[Mapping[str, Any]], generations: Sequence[str],
                      label_names: Sequence[str]) -> dict[str, float]:
    """Score each row by what it is, and return one flat dict of floats.

    Rows with ``choices`` are multiple choice (target ``row["label"]``, else the option its ``answer``
    names); other rows with an ``answer_type`` are open-ended VQA; the rest are closed-vocabulary answers
    over ``label_names``. With a single kind of row the keys are that kind's (``accuracy``, ``macro_f1``,
    ``invalid_rate``, ``n``; VQA: ``accuracy_open``, ``accuracy_closed``, ``n_open``, ``n_closed`` and
    ``accuracy_qtype/<type>``). With several, ``accuracy`` and ``n`` are overall and each kind's keys
    follow, prefixed ``choice/``, ``label/`` or ``vqa/``.
    """
    if len(rows) != len(generations):
        raise ValueError(f"{len(generations)} generations for {len(rows)} rows")
    groups = group_rows(rows, label_names)
    results = {
        kind: _SCORERS[kind]([rows[i] for i in idx], [generations[i] for i in idx], label_names)
        for kind, idx in groups.items()
    }
    if len(results) <= 1:
        return next(iter(results.values()), {"accuracy": math.nan, "n": 0.0})
    n = sum(r["n"] for r in results.values())
    merged = {"accuracy": sum(r["accuracy"] * r["n"] for r in results.values()) / n, "n": n}
    merged.update({f"{kind}/{k}": v for kind, r in results.items() for k, v in r.items()})
    return merged


def group_rows(rows: Sequence[Mapping[str, Any]], label_names: Sequence[str]) -> dict[str, list[int]]:
    """Row indices by kind: ``choice`` (rows with choices), ``vqa`` (open-ended, with an answer_type) and
    ``label`` (closed vocabulary over ``label_names``), in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(_row_kind(row, label_names, i), []).append(i)
    return groups


def _row_kind(row: Mapping[str, Any], label_names: Sequence[str], i: int) -> str:
    if row.get("choices"):
        return "choice"
    if row.get("answer_type") is not None:
        return "vqa"
    if label_names:
        return "label"
    raise DataError(f"row {i} (id {row.get('id')!r}) has no choices, no answer_type, and the task has no "
                    "label_names, so its generation cannot be scored; set one of them in the data source")


def _score_choices(rows, generations, label_names) -> dict[str, float]:
    predictions = [parse_choice(g, r["choices"]) for g, r in zip(generations, rows)]
    targets = [choice_target(r) for r in rows]
    return classification_metrics(predictions, targets, max(len(r["choices"]) for r in rows))


def choice_target(row: Mapping[str, Any]) -> int:
    """The index of a choice row's true option: its ``label``, else the option its ``answer`` names."""
    label = row.get("label")
    target = parse_choice(str(row["answer"]), row["choices"]) if label is None else int(label)
    if target is None or not 0 <= target < len(row["choices"]):
        raise DataError(f"row {row.get('id')!r}: label {label!r} / answer {row['answer']!r} names none "
                        f"of its {len(row['choices'])} choices")
    return target


def _score_labels(rows, generations, label_names) -> dict[str, float]:
    index = {normalize(name): i for i, name in enumerate(label_names)}
    predictions = [index.get(parse_answer(g, label_names)) for g in generations]
    targets = []
    for row in rows:
        if normalize(str(row["answer"])) not in index:
            raise DataError(f"row {row.get('id')!r}: answer {row['answer']!r} is not one of the task's "
                            f"label_names {list(label_names)}")
        targets.append(index[normalize(str(row["answer"]))])
    return classification_metrics(predictions, targets, len(label_names))


def _score_vqa(rows, generations, label_names) -> dict[str, float]:
    qtypes = [r.get("question_type") for r in rows]
    out = vqa_metrics(generations, [str(r["answer"]) for r in rows], [r["answer_type"] for r in rows],
                      qtypes if any(q is not None for q in qtypes) else None)
    by_type = out.pop("by_question_type", {})
    flat = {k: float(v) for k, v in out.items()}
    flat.update({f"accuracy_qtype/{q}": acc for q, acc in by_type.items()})
    return flat


_SCORERS: dict[str, Callable[..., dict[str, float]]] = {
    "choice": _score_choices, "label": _score_labels, "vqa": _score_vqa,
}
