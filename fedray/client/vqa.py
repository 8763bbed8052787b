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
from typing import Any, Callable, Iterable, Sequence

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
    normalize: Callable[[str], str] = normalize_vqa_answer,
) -> dict[str, Any]:
    """Exact-match accuracy overall and per answer type ("open"/"closed", any case), and per question type.

    Returns ``accuracy``, ``accuracy_closed``, ``accuracy_open`` (NaN when there are no such rows), the
    counts ``n``, ``n_open``, ``n_closed`` and, when ``question_types`` is given, ``by_question_type``
    (type → accuracy; rows whose type is None are left out of it). Both sides go through ``normalize``.
    """
    columns = [answers, answer_types] + ([question_types] if question_types is not None else [])
    if any(len(c) != len(predictions) for c in columns):
        raise ValueError(f"{len(predictions)} predictions but {[len(c) for c in columns]} answers/types")
    hits = [normalize(p) == normalize(a) for p, a in zip(predictions, answers)]
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


# -- the FedMLLM reference's normalisation (the ``fedmllm`` evaluation protocol) ------------------------
# The reference's evaluator differs from the rules above in small ways that can decide a match: only these
# marks are punctuation, and each is deleted outright (not turned into a space) when the answer holds it
# next to a space or holds a digit-comma-digit anywhere; "%", ":", "'", "*" ... stay; periods not before a
# digit go, but only the first 32 of them (its substitution passes re.UNICODE, 32, as the count); the case
# is lowered after the punctuation; contractions are fixed only for the apostrophe-less spellings below.
_FEDMLLM_MARKS = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
                  ",", "?", "!")
_FEDMLLM_PERIODS_REMOVED = 32
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
# Contracted forms; the reference fixes each spelling that lacks exactly one of a form's apostrophes.
_FEDMLLM_FORMS = (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't "
    "he'd he'd've he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't mightn't've might've "
    "mustn't must've needn't not've o'clock oughtn't 'ow's'at shan't she'd've should've shouldn't "
    "shouldn't've somebody'd've somebody'll somebody's someone'd someone'd've someone'll someone's "
    "something'd something'd've something'll that's there'd there'd've there're there's they'd they'd've "
    "they'll they're they've 'twas wasn't we'd've we've weren't what'll what're what's what've when's "
    "where'd where's where've who'd who'd've who'll who's who've why'll why're why's won't would've "
    "wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll you're you've"
).split()
_FEDMLLM_CONTRACTIONS = {
    form[:i] + form[i + 1:]: form for form in _FEDMLLM_FORMS for i, c in enumerate(form) if c == "'"
}
_FEDMLLM_CONTRACTIONS["somebody'd"] = "somebodyd"  # sic: the reference un-fixes this one


def normalize_vqa_answer_fedmllm(text: str) -> str:
    """``text`` as the FedMLLM reference's evaluator normalises it before its exact-match comparison."""
    original = str(text)
    delete = _DIGIT_COMMA_DIGIT.search(original) is not None
    out = original
    for mark in _FEDMLLM_MARKS:
        spaced = f"{mark} " in original or f" {mark}" in original
        out = out.replace(mark, "" if delete or spaced else " ")
    out = _LOOSE_PERIOD.sub("", out, count=_FEDMLLM_PERIODS_REMOVED)
    words = (_NUMBER_WORDS.get(w, w) for w in out.lower().split())
    words = (_FEDMLLM_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)
    return " ".join(words).replace(",", "").replace("x ray", "xray")


def vqa_metrics_fedmllm(predictions: Sequence[str], answers: Sequence[str], answer_types: Sequence[str],
                        question_types: Sequence[str | None] | None = None) -> dict[str, Any]:
    """:func:`vqa_metrics` with the reference's normalisation (:func:`normalize_vqa_answer_fedmllm`)."""
    return vqa_metrics(predictions, answers, answer_types, question_types,
                       normalize=normalize_vqa_answer_fedmllm)
