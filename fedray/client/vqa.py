"""Open-ended VQA scoring: VQA-style answer normalisation, then exact match (overall, open, closed, per type).

Normalisation follows the rules of the standard VQA evaluation, so "Two.", "2" and "the 2" all match:
lower-case; commas inside numbers dropped ("1,000" → "1000"); other punctuation becomes a space, except
apostrophes and a period before a digit (a decimal point, "3.5"); "x ray"/"x-ray" → "xray"; number words
up to ten (and "none") become digits; the articles a/an/the are dropped; common contractions written
without their apostrophe get it back ("dont" → "don't").
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence

from fedray.errors import DataError

ANSWER_TYPES: tuple[str, ...] = ("open", "closed")

_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
# Only forms that are not English words themselves ("its", "ill", "well", "were" stay as they are).
_CONTRACTIONS = {
    word.replace("'", ""): word
    for word in (
        "ain't", "aren't", "can't", "couldn't", "could've", "didn't", "doesn't", "don't", "hadn't",
        "hasn't", "haven't", "he's", "i'm", "i've", "isn't", "mightn't", "might've", "mustn't",
        "must've", "needn't", "shouldn't", "should've", "that's", "there's", "they're", "they've",
        "wasn't", "weren't", "what's", "where's", "who's", "won't", "wouldn't", "would've",
        "you're", "you've",
    )
}
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
_PUNCTUATION = re.compile(r"[^\w\s'.]|_")  # everything but letters, digits, spaces, ' and .
_LOOSE_PERIOD = re.compile(r"\.(?!\d)")  # a period not followed by a digit is punctuation
_XRAY = re.compile(r"\bx\s+ray")


def normalize_vqa_answer(text: str) -> str:
    """``text`` in the canonical form VQA scoring compares (see the module docstring)."""
    text = text.lower()
    text = _DIGIT_COMMA.sub("", text)
    text = _PUNCTUATION.sub(" ", text)
    text = _LOOSE_PERIOD.sub("", text)
    text = _XRAY.sub("xray", text)
    words = (_NUMBER_WORDS.get(w, w) for w in text.split())
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_exact_match(prediction: str, answer: str) -> bool:
    """Whether ``prediction`` and ``answer`` are equal after :func:`normalize_vqa_answer`."""
    return normalize_vqa_answer(prediction) == normalize_vqa_answer(answer)


def vqa_metrics(
    predictions: Sequence[str],
    answers: Sequence[str],
    answer_types: Sequence[str],
    question_types: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Exact-match accuracy overall and per answer type ("open"/"closed", any case), and per question type.

    Returns ``accuracy``, ``accuracy_closed``, ``accuracy_open`` (NaN when there are no such rows), the
    counts ``n``, ``n_open``, ``n_closed`` and, when ``question_types`` is given, ``by_question_type``
    (type → accuracy; rows whose type is None are left out of it).
    """
    columns = [answers, answer_types] + ([question_types] if question_types is not None else [])
    if any(len(c) != len(predictions) for c in columns):
        raise ValueError(f"{len(predictions)} predictions but {[len(c) for c in columns]} answers/types")
    hits = [vqa_exact_match(p, a) for p, a in zip(predictions, answers)]
    kinds = [_answer_kind(t) for t in answer_types]
    out: dict[str, Any] = {
        "accuracy": _mean(hits),
        "accuracy_closed": _mean(h for h, k in zip(hits, kinds) if k == "closed"),
        "accuracy_open": _mean(h for h, k in zip(hits, kinds) if k == "open"),
        "n": len(hits),
        "n_open": kinds.count("open"),
        "n_closed": kinds.count("closed"),
    }
    if question_types is not None:
        types = sorted({q for q in question_types if q is not None})
        out["by_question_type"] = {
            q: _mean(h for h, qt in zip(hits, question_types) if qt == q) for q in types
        }
    return out


def _answer_kind(answer_type: str) -> str:
    kind = str(answer_type).strip().lower()
    if kind not in ANSWER_TYPES:
        raise DataError(f"answer_type {answer_type!r} is not one of {ANSWER_TYPES} (any case); "
                        "fix the data source that produced it")
    return kind


def _mean(values: Iterable[bool]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan
