"""What the model answered, row by row: each generation with the answer each parser reads from it.

The metrics (:mod:`fedray.client.metrics`, :mod:`fedray.client.protocols`) reduce generations to rates;
these records keep the rows, so that an accuracy of 0 with an invalid rate of 1 can be looked at. Each
record says which kind of row it is (``choice``, ``label``, ``vqa``, as the strict scorer groups them),
what the strict parser read (``parsed``: the option as "(B) text", the label name, or the normalised VQA
answer; None when the generation names no valid answer), whether that is a valid answer (``valid``; a VQA
generation is invalid only when nothing is left after normalisation) and whether it is right
(``correct``). With the ``fedmllm`` protocol, ``fedmllm_parsed`` / ``fedmllm_correct`` give the
reference's reading (an option index, None where it falls back to index 2; the normalised VQA answer).
Pure Python, no torch.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from fedray.client.metrics import choice_target, group_rows, normalize, parse_answer, parse_choice
from fedray.client.protocols import FALLBACK_INDEX, parse_fedmllm_choice
from fedray.client.vqa import normalize_vqa_answer, normalize_vqa_answer_fedmllm
from fedray.data.prompts import format_choice

Row = Mapping[str, Any]
# (row, generation, label names) → (parsed answer or None, correct)
Reader = Callable[[Row, str, Sequence[str]], tuple[Any, bool]]


def _strict_choice(row: Row, generated: str, label_names: Sequence[str]) -> tuple[Any, bool]:
    index = parse_choice(generated, row["choices"])
    parsed = None if index is None else format_choice(index, row["choices"][index])
    return parsed, index is not None and index == choice_target(row)


def _strict_label(row: Row, generated: str, label_names: Sequence[str]) -> tuple[Any, bool]:
    named = parse_answer(generated, label_names)
    parsed = next((name for name in label_names if normalize(name) == named), None)
    return parsed, parsed is not None and normalize(parsed) == normalize(str(row["answer"]))


def _strict_vqa(row: Row, generated: str, label_names: Sequence[str]) -> tuple[Any, bool]:
    parsed = normalize_vqa_answer(generated)
    return parsed or None, bool(parsed) and parsed == normalize_vqa_answer(str(row["answer"]))


def _fedmllm_choice(row: Row, generated: str, label_names: Sequence[str]) -> tuple[Any, bool]:
    index = parse_fedmllm_choice(generated, len(row["choices"]))
    return index, (FALLBACK_INDEX if index is None else index) == choice_target(row)


def _fedmllm_vqa(row: Row, generated: str, label_names: Sequence[str]) -> tuple[Any, bool]:
    parsed = normalize_vqa_answer_fedmllm(generated)
    return parsed, parsed == normalize_vqa_answer_fedmllm(str(row["answer"]))


STRICT_READERS: dict[str, Reader] = {"choice": _strict_choice, "label": _strict_label, "vqa": _strict_vqa}
#: The reference has no closed-vocabulary parse: label rows get no fedmllm fields (as in its metrics).
FEDMLLM_READERS: dict[str, Reader] = {"choice": _fedmllm_choice, "vqa": _fedmllm_vqa}


def prediction_records(rows: Sequence[Row], generations: Sequence[str], label_names: Sequence[str],
                       prompts: Sequence[str | None] | None = None,
                       protocols: Sequence[str] = ("strict",)) -> list[dict[str, Any]]:
    """One JSON-ready record per row: ``id``, ``kind``, ``prompt`` (when given), ``generated``,
    ``parsed``, ``answer``, ``valid``, ``correct`` (and the fedmllm fields when that protocol is on)."""
    if len(rows) != len(generations) or (prompts is not None and len(prompts) != len(rows)):
        raise ValueError(f"{len(generations)} generations and {len(prompts or ())} prompts for "
                         f"{len(rows)} rows")
    kinds = {i: kind for kind, indices in group_rows(rows, label_names).items() for i in indices}
    records = []
    for i, (row, generated) in enumerate(zip(rows, generations)):
        kind = kinds[i]
        parsed, correct = STRICT_READERS[kind](row, generated, label_names)
        record = {"id": row.get("id"), "kind": kind, "prompt": None if prompts is None else prompts[i],
                  "generated": generated, "parsed": parsed, "answer": str(row["answer"]),
                  "valid": parsed is not None, "correct": bool(correct)}
        if "fedmllm" in protocols and kind in FEDMLLM_READERS:
            record["fedmllm_parsed"], fedmllm_correct = FEDMLLM_READERS[kind](row, generated, label_names)
            record["fedmllm_correct"] = bool(fedmllm_correct)
        records.append(record)
    return records
