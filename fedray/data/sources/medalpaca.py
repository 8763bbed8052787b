"""The "medalpaca" source: Medical Meadow wikidoc medical flashcards (Han et al. 2023), text-only QA.

Reads ``medical_meadow_wikidoc_medical_flashcards.json`` (a JSON list of ``{instruction, input, output}``;
``data.root`` may be the file or its folder) or a Hugging Face copy with those columns. ``input`` is the
question and ``output`` the answer; the constant instruction is dropped. Everything is training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from fedray.config.schema import spec
from fedray.data.schema import samples_to_table
from fedray.data.sources._files import (
    Layout,
    Record,
    build_tables,
    detect_layout,
    hf_records,
    layout_option,
    read_json_records,
)
from fedray.data.sources.base import DATA_SOURCES, SourceData
from fedray.errors import DataError

SOURCE = "medalpaca"
TASK = "medical_text_qa"
FILE_NAME = "medical_meadow_wikidoc_medical_flashcards.json"


@dataclass(frozen=True)
class MedAlpacaParams:
    reads_files: ClassVar[bool] = True
    layout: Layout = layout_option()
    skip_empty: bool = spec(True, help="leave out cards whose question or answer is empty; false keeps "
                                       "every card, as the FedMLLM reference does (its shards line up)")
    all_train: bool = spec(False, help="every card is training data, as in the FedMLLM reference: no test "
                                       "split is carved out by data.test_fraction (the task is not scored)")


@DATA_SOURCES.register("medalpaca", params=MedAlpacaParams)
def load_medalpaca(params: MedAlpacaParams, root: str) -> SourceData:
    """Question/answer flashcards as one ``train`` split (plus an empty ``test`` split with ``all_train``).

    With ``skip_empty`` rows with an empty input or output are skipped and ``notes["skipped_empty"]`` counts
    them. The reference shuffles and shards the cards by their position in the file, so matching its shards
    needs the same cards in the same order: ``skip_empty: false`` and ``all_train: true``.
    """
    base = Path(root)
    layout = "original" if base.is_file() else detect_layout(base, (FILE_NAME,), params.layout, SOURCE)
    if layout == "original":
        records = read_json_records(base if base.is_file() else base / FILE_NAME)
    else:
        splits = hf_records(base, layout)
        if "train" not in splits:
            raise DataError(f"the Hugging Face copy under {base} has no 'train' split (found: "
                            f"{', '.join(sorted(splits)) or 'none'}); point data.root at the flashcards")
        records = splits["train"]
    rows = [row for i, rec in enumerate(records) if (row := _sample(rec, i, params.skip_empty)) is not None]
    splits = build_tables({"train": rows}, SOURCE)
    if params.all_train:
        splits["test"] = samples_to_table([])  # present and empty: nothing is carved from the cards
    return SourceData(splits=splits, label_names=(), task=TASK,
                      notes={"skipped_empty": len(records) - len(rows)})


def _sample(rec: Record, index: int, skip_empty: bool = True) -> dict[str, Any] | None:
    """The sample of one flashcard, or ``None`` when its question or answer is empty (or null) and
    ``skip_empty``; kept, an empty (or null) field is the empty string."""
    for name in ("input", "output"):
        if name not in rec.data:  # a missing column is a wrong file, not an empty card
            rec.require(name)
    question, answer = (_text(rec.get(name)) for name in ("input", "output"))
    if skip_empty and (not question or not answer):
        return None
    return {
        "id": f"{SOURCE}-{index}",
        "image": None,
        "text": None,
        "question": question,
        "choices": None,
        "answer": answer,
        "label": None,
        "task": TASK,
        "source": SOURCE,
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()
