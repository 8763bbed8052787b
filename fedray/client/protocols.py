"""Evaluation protocols: how one eval set's generations become metrics (``eval.protocol``).

- ``strict`` (fedray's): a generation counts only if it *is* one of the answers; anything else is invalid
  and reported as its own rate (:mod:`fedray.client.metrics`). Keys ``accuracy``, ``macro_f1``,
  ``invalid_rate``, ... (and ``auc`` from option log-likelihoods, added by the engine).
- ``fedmllm`` (the FedMLLM reference's): keys ``fedmllm_*``. A multiple-choice generation loses every
  "answer" and "Answer", then the first match of the letter pattern ``[( ]*[A-G][) ]*`` (up to the last
  option's letter when there are more than seven options, as CrisisMMD's A-H), stripped of spaces and
  then of parentheses, is the option; when there is no match, or the letter is not an option, the
  prediction is option index 2 (a real class in CrisisMMD). From those indices:

  - ``fedmllm_accuracy``: the share of predictions equal to the truth;
  - ``fedmllm_f1``: scikit-learn's macro F1 over the indices (classes in truth or predictions);
  - ``fedmllm_auc`` (two-option sets such as Hateful Memes): scikit-learn's ROC-AUC of the truth against
    the *hard* predicted indices (2 for a failure ranks above 1), which for 0/1 predictions equals
    balanced accuracy; NaN when the truth holds one class only;
  - ``fedmllm_fallback_rate``: the share of generations that fell back to index 2.

  An open-ended (VQA) generation matches when it equals the answer after the reference's normalisation
  (:func:`~fedray.client.vqa.normalize_vqa_answer_fedmllm`): ``fedmllm_accuracy``, ``_open``,
  ``_closed`` and ``fedmllm_accuracy_qtype/<type>``. Closed-vocabulary rows without options have no
  reference counterpart and get no fedmllm keys.

Values are fractions in [0, 1] like the strict ones; the reference prints them ×100. A set mixing kinds
gets an overall ``fedmllm_accuracy`` and each kind's keys prefixed with the kind (``choice/``, ``vqa/``),
as the strict protocol does.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fedray.client.metrics import choice_target, group_rows, score_generations
from fedray.client.vqa import vqa_metrics_fedmllm
from fedray.data.prompts import choice_letter
from fedray.registry import Registry

Scorer = Callable[[Sequence[Mapping[str, Any]], Sequence[str], Sequence[str]], dict[str, float]]
EVAL_PROTOCOLS: Registry[Scorer] = Registry("evaluation protocol")

FALLBACK_INDEX = 2  # the reference's answer when its parse fails
_REFERENCE_LAST_LETTER = 7  # its pattern spans A-G for two options; CrisisMMD's eight widen it to A-H
PREFIX = "fedmllm_"


@EVAL_PROTOCOLS.register("strict")
def strict(rows: Sequence[Mapping[str, Any]], generations: Sequence[str],
           label_names: Sequence[str]) -> dict[str, float]:
    """fedray's strict parser and metrics (:func:`fedray.client.metrics.score_generations`)."""
    return score_generations(rows, generations, label_names)


@EVAL_PROTOCOLS.register("fedmllm")
def fedmllm(rows: Sequence[Mapping[str, Any]], generations: Sequence[str],
            label_names: Sequence[str]) -> dict[str, float]:
    """The reference's parse and metrics (see the module docstring), keys prefixed ``fedmllm_``."""
    if len(rows) != len(generations):
        raise ValueError(f"{len(generations)} generations for {len(rows)} rows")
    groups = {k: idx for k, idx in group_rows(rows, label_names).items() if k in _FEDMLLM_SCORERS}
    results = {kind: _FEDMLLM_SCORERS[kind]([rows[i] for i in idx], [generations[i] for i in idx])
               for kind, idx in groups.items()}
    if len(results) <= 1:
        return {PREFIX + k: v for r in results.values() for k, v in r.items() if k != "n"}
    n = sum(r["n"] for r in results.values())
    merged = {PREFIX + "accuracy": sum(r["accuracy"] * r["n"] for r in results.values()) / n}
    merged.update({f"{kind}/{PREFIX}{k}": v for kind, r in results.items() for k, v in r.items() if k != "n"})
    return merged


def score_protocols(protocols: Sequence[str], rows: Sequence[Mapping[str, Any]], generations: Sequence[str],
                    label_names: Sequence[str]) -> dict[str, float]:
    """Every named protocol's metrics, merged (their keys never collide)."""
    metrics: dict[str, float] = {}
    for name in protocols:
        metrics.update(EVAL_PROTOCOLS.get(name)(rows, generations, label_names))
    return metrics


# -- the reference's multiple-choice parse -------------------------------------------------------------
def letter_pattern(num_options: int) -> re.Pattern[str]:
    """The reference's letter pattern: optional "(" and spaces, a capital A..G (A..<last option's letter>
    when there are more than seven options), optional ")" and spaces."""
    last = choice_letter(max(num_options, _REFERENCE_LAST_LETTER) - 1)
    return re.compile(rf"[( ]*[A-{last}][) ]*")


def parse_fedmllm_choice(generated: str, num_options: int) -> int | None:
    """The option index the reference reads from ``generated``, or None where it falls back to index 2."""
    text = generated.replace("answer", "").replace("Answer", "")
    match = letter_pattern(num_options).search(text)
    if match is None:
        return None
    letter = match.group(0).strip().strip("()")
    index = ord(letter) - ord("A") if len(letter) == 1 else -1
    return index if 0 <= index < num_options else None


def fedmllm_choice_metrics(predictions: Sequence[int | None], targets: Sequence[int],
                           binary: bool) -> dict[str, float]:
    """Accuracy, macro F1, (for two-option sets) AUC of hard predictions, fallback rate, and ``n``."""
    from sklearn.metrics import f1_score, roc_auc_score

    n = len(targets)
    if n == 0:
        return {"accuracy": math.nan, "f1": math.nan, "fallback_rate": math.nan, "n": 0.0}
    pred = np.array([FALLBACK_INDEX if p is None else p for p in predictions], dtype=np.int64)
    true = np.asarray(targets, dtype=np.int64)
    out = {"accuracy": float((pred == true).mean()),
           # zero_division=0 is the value the reference's default ("warn") gives, without the warning
           "f1": float(f1_score(true, pred, average="macro", zero_division=0)),
           "fallback_rate": float(np.mean([p is None for p in predictions])),
           "n": float(n)}
    if binary:
        out["auc"] = float(roc_auc_score(true, pred)) if len(np.unique(true)) == 2 else math.nan
    return out


def _fedmllm_choices(rows: Sequence[Mapping[str, Any]], generations: Sequence[str]) -> dict[str, float]:
    predictions = [parse_fedmllm_choice(g, len(r["choices"])) for g, r in zip(generations, rows)]
    binary = all(len(r["choices"]) == 2 for r in rows)
    return fedmllm_choice_metrics(predictions, [choice_target(r) for r in rows], binary)


def _fedmllm_vqa(rows: Sequence[Mapping[str, Any]], generations: Sequence[str]) -> dict[str, float]:
    qtypes = [r.get("question_type") for r in rows]
    out = vqa_metrics_fedmllm(generations, [str(r["answer"]) for r in rows], [r["answer_type"] for r in rows],
                              qtypes if any(q is not None for q in qtypes) else None)
    by_type = out.pop("by_question_type", {})
    flat = {k: float(v) for k, v in out.items() if k in ("accuracy", "accuracy_open", "accuracy_closed", "n")}
    flat.update({f"accuracy_qtype/{q}": acc for q, acc in by_type.items()})
    return flat


_FEDMLLM_SCORERS: dict[str, Callable[..., dict[str, float]]] = {
    "choice": _fedmllm_choices, "vqa": _fedmllm_vqa}
