"""The "hateful_memes" source: Facebook AI's Hateful Memes (Kiela et al. 2020) as a two-choice question.

Reads the release as distributed (``img/<id>.png`` and JSON-lines splits ``train.jsonl``, ``dev_seen.jsonl``
or ``dev.jsonl``, ``test_seen.jsonl`` or ``test.jsonl``, rows ``{"id", "img", "label", "text"}``) or a
Hugging Face copy with the same fields (parquet snapshot or ``save_to_disk`` folder). Label 1 = hateful.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from fedray.config.schema import spec
from fedray.data.sources._files import (
    ImageReader,
    Layout,
    Record,
    build_tables,
    detect_layout,
    hf_split_files,
    layout_option,
    max_image_side_option,
    read_records,
)
from fedray.data.sources.base import DATA_SOURCES, SourceData
from fedray.errors import DataError

SOURCE = TASK = "hateful_memes"
QUESTION = "Is the content hateful?"
CHOICES: tuple[str, ...] = ("not-hateful", "hateful")
#: Split file names (or Hugging Face split names) tried in order for each fedray split.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "validation": ("dev_seen", "dev", "validation", "val"),
    "test": ("test_seen", "test"),
}


@dataclass(frozen=True)
class HatefulMemesParams:
    reads_files: ClassVar[bool] = True
    max_image_side: Optional[int] = max_image_side_option()
    layout: Layout = layout_option()
    test_split: Optional[str] = spec(None, help="the split file used as the test split, e.g. test_unseen "
                                                "(null: test_seen or test)")


@DATA_SOURCES.register("hateful_memes", params=HatefulMemesParams)
def load_hateful_memes(params: HatefulMemesParams, root: str) -> SourceData:
    """Memes with their text and the question "Is the content hateful?"; answers not-hateful / hateful."""
    base = Path(root)
    images = ImageReader(params.max_image_side, root=root)
    layout = detect_layout(base, ("train.jsonl",), params.layout, SOURCE)
    files = ({p.stem: [p] for p in sorted(base.glob("*.jsonl"))} if layout == "original"
             else hf_split_files(base, layout))
    rows = {split: [_sample(rec, split, base, images) for rec in read_records(files[name])]
            for split, name in _choose_splits(files, params.test_split, base).items()}
    return SourceData(splits=build_tables(rows, SOURCE), label_names=CHOICES, task=TASK)


def _choose_splits(files: dict[str, list[Path]], test_split: str | None, base: Path) -> dict[str, str]:
    """fedray split → the split file (or HF split) name that provides it."""
    available = ", ".join(sorted(files)) or "(none)"
    if "train" not in files:
        raise DataError(f"no train split under {base} (found: {available}); expected train.jsonl or a "
                        "Hugging Face copy with a 'train' split")
    if test_split is not None and test_split not in files:
        raise DataError(f"data.test_split {test_split!r} is not a split under {base}; "
                        f"available: {available}")
    chosen = {"train": "train"}
    test = test_split or next((n for n in CANDIDATES["test"] if n in files), None)
    validation = next((n for n in CANDIDATES["validation"] if n in files and n != test), None)
    if validation is not None:
        chosen["validation"] = validation
    if test is not None:
        chosen["test"] = test
    return chosen


def _sample(rec: Record, split: str, base: Path, images: ImageReader) -> dict[str, Any]:
    label = _label(rec, split)
    return {
        "id": f"{SOURCE}-{rec.require('id')}",
        "image": images.cell(rec.require("img"), base, rec.where),
        "text": rec.text("text"),
        "question": QUESTION,
        "choices": list(CHOICES),
        "answer": CHOICES[label],
        "label": label,
        "task": TASK,
        "source": SOURCE,
    }


def _label(rec: Record, split: str) -> int:
    """The 0/1 label; an evaluation row without one means the split is the unlabeled challenge set."""
    value = rec.data.get("label")
    if split != "train" and value in (None, -1):
        raise DataError(f"{rec.where} has no label: this split is unlabeled, so it cannot be used for "
                        f"{split}; choose a labeled split with data.test_split "
                        "(e.g. 'test_seen' or 'dev_seen')")
    value = rec.require("label")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or value not in (0, 1):
        raise DataError(f"{rec.where}: label {value!r} is not 0 (not-hateful) or 1 (hateful)")
    return int(value)
