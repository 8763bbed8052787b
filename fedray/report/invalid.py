"""The most common invalid answers of a run (``fedray report RUN_DIR --invalid [N]``).

Reads the predictions a run wrote with ``eval.save_predictions`` (:mod:`fedray.engine.predictions`) and
counts the generations the strict parser could not read as any valid answer, for the last evaluated round
by default: what the model says instead of an option is usually the fastest way to see why accuracy is low
(a cut answer, the question repeated, the letter without its parentheses ...).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fedray.engine.predictions import prediction_rounds, read_predictions
from fedray.errors import FedRayError

SHOWN_CHARS = 60


@dataclass(frozen=True)
class InvalidAnswers:
    """One round's invalid generations: how many answers there were, how many were invalid, the top ones."""

    run_dir: Path
    server_round: int
    answers: int
    invalid: int
    top: list[tuple[str, int]]  # (generated text, stripped; count), most common first


def invalid_answers(run_dir: str | Path, top: int = 10, server_round: int | None = None) -> InvalidAnswers:
    """The ``top`` most common invalid generations of ``server_round`` (default: the last evaluated)."""
    rounds = prediction_rounds(run_dir)
    if not rounds:
        raise FedRayError(f"{run_dir} has no predictions/ files; run with eval.save_predictions=true to "
                          "keep the generated answers")
    chosen = rounds[-1] if server_round is None else server_round
    if chosen not in rounds:
        raise FedRayError(f"{run_dir} has no predictions of round {chosen}; it has rounds {rounds}")
    records = list(read_predictions(run_dir, chosen))
    counts = Counter(r["generated"].strip() for r in records if not r["valid"])
    return InvalidAnswers(Path(run_dir), chosen, len(records), sum(counts.values()), counts.most_common(top))


def invalid_view(run_dirs: Sequence[str | Path], top: int = 10) -> str:
    """:func:`format_invalid` of every run that kept predictions, a note for each that did not (a sweep
    may mix both); an error only when none did."""
    parts, missing = [], []
    for run_dir in run_dirs:
        if prediction_rounds(run_dir):
            parts.append(format_invalid(invalid_answers(run_dir, top)))
        else:
            missing.append(str(run_dir))
    if not parts:
        raise FedRayError(f"no predictions/ files in {', '.join(missing)}; run with "
                          "eval.save_predictions=true to keep the generated answers")
    if missing:
        parts.append(f"no predictions (eval.save_predictions was off): {', '.join(missing)}")
    return "\n\n".join(parts)


def format_invalid(report: InvalidAnswers) -> str:
    """A short text table: the share invalid, then count, share of the invalid ones and the answer."""
    share = report.invalid / report.answers if report.answers else 0.0
    lines = [f"{report.run_dir} round {report.server_round}: {report.invalid} of {report.answers} answers "
             f"invalid ({share:.1%})"]
    if report.top:
        lines.append(f"  {'count':>6}  {'share':>6}  generated (stripped)")
        for text, count in report.top:
            shown = text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
            lines.append(f"  {count:>6}  {count / report.invalid:>6.1%}  {shown!r}")
    return "\n".join(lines)
