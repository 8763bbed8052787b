"""Strict answer parsing and accuracy for closed-vocabulary tasks.

A generation counts only if, after trimming whitespace, a trailing period and case, it *is* one of the
task's answers; anything else is unparseable (reported as its own rate), never fuzzily matched.
"""

from __future__ import annotations

from typing import Iterable, Sequence


def normalize(text: str) -> str:
    return text.strip().rstrip(".").strip().lower()


def parse_answer(generated: str, valid_answers: Iterable[str]) -> str | None:
    """The answer ``generated`` names, or None when it is not exactly one of ``valid_answers``."""
    candidate = normalize(generated)
    return candidate if candidate in {normalize(a) for a in valid_answers} else None


def accuracy_metrics(generations: Sequence[str], targets: Sequence[str],
                     valid_answers: Sequence[str]) -> dict[str, float]:
    """``accuracy`` (unparseable counts as wrong), ``unparseable_rate`` and the sample count ``n``."""
    if len(generations) != len(targets):
        raise ValueError(f"{len(generations)} generations for {len(targets)} targets")
    parsed = [parse_answer(g, valid_answers) for g in generations]
    correct = sum(p is not None and p == normalize(t) for p, t in zip(parsed, targets))
    unparseable = sum(p is None for p in parsed)
    n = len(targets)
    return {"accuracy": correct / n if n else 0.0,
            "unparseable_rate": unparseable / n if n else 0.0,
            "n": float(n)}
