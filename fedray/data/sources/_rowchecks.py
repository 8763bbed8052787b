"""Checks on the sample rows a file source built, before they become Arrow tables.

They catch a broken dataset where it is cheap to name the place: a field of the wrong kind, a sample id
given twice, a labelled train split with a single class. Each raises a :class:`DataError` saying what to
fix in the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fedray.errors import DataError

#: Sample fields that must hold text (or null) when a source builds a row.
_TEXT_FIELDS = ("id", "text", "question", "answer", "task", "source", "answer_type", "question_type")
_EXPECTED = {"choices": "a list of strings", "label": "an integer"}


def check_field_types(split_rows: Sequence[Mapping[str, Any]], split: str, source: str) -> None:
    """A row whose field holds the wrong kind of value, named by split, position and id (the sources name
    file and line themselves where they can; this catches the rest before Arrow's bare cast error)."""
    for n, row in enumerate(split_rows, start=1):
        bad = [name for name in _TEXT_FIELDS if row.get(name) is not None and not isinstance(row[name], str)]
        choices = row.get("choices")
        if choices is not None and not (isinstance(choices, list)
                                        and all(isinstance(c, str) for c in choices)):
            bad.append("choices")
        label = row.get("label")
        if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
            bad.append("label")
        if bad:
            expected = _EXPECTED.get(bad[0], "text")
            raise DataError(f"data source {source!r}, {split} sample {n} (id {row.get('id')!r}): field "
                            f"{bad[0]!r} holds a {type(row[bad[0]]).__name__}, expected {expected}. "
                            "Fix that row in the dataset")


def refuse_duplicate_ids(rows: Mapping[str, list[dict[str, Any]]], source: str) -> None:
    """Two samples of one split with one id: a repeated row. Across splits an id may repeat, since many
    datasets number each split from 0 (an ``idx`` column), so that is not taken as a leak."""
    repeated: dict[tuple[str, str], int] = {}
    for split, split_rows in rows.items():
        counts: dict[str, int] = {}
        for row in split_rows:
            sample_id = str(row.get("id"))
            counts[sample_id] = counts.get(sample_id, 0) + 1
        repeated.update({(split, sample_id): n for sample_id, n in counts.items() if n > 1})
    if repeated:
        shown = [f"{sample_id} ({n}× in {split})" for (split, sample_id), n in list(repeated.items())[:5]]
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise DataError(f"data source {source!r}: {len(repeated)} sample id(s) appear more than once in a "
                        f"split: {', '.join(shown)}{more}; each sample must appear once. Remove the "
                        "repeated rows from the dataset files")


def refuse_single_class(train_rows: Sequence[Mapping[str, Any]], source: str) -> None:
    """A labelled train split whose samples all have one answer (one class) is an error, not a warning:
    training on it can only teach the model one constant answer, and its test accuracy would measure the
    test split's balance. It is a broken or wrongly filtered file, never an experiment (a skewed client
    is made by the partition, not by the dataset)."""
    if any(row.get("label") is None for row in train_rows):
        return  # open-ended answers: no classes to count
    answers = {str(row.get("answer")) for row in train_rows}
    if len(train_rows) > 1 and len(answers) == 1:
        raise DataError(f"data source {source!r}: all {len(train_rows)} training samples have the answer "
                        f"{answers.pop()!r}; a labelled train split needs at least two classes to learn "
                        "anything. Check the train file's label column (or the source's filters)")
