"""The "vqa_rad" source: VQA-RAD (Lau et al. 2018), open and closed questions about radiology images.

Reads the OSF release, ``VQA_RAD Dataset Public.json`` (a JSON list) with ``VQA_RAD Image Folder/``:
train = ``phrase_type`` freeform/para, test = test_freeform/test_para (as the FedMLLM reference splits it;
"frame" rephrasings are left out). Also reads a Hugging Face copy (``image``, ``question``, ``answer``;
splits train/test), where a yes/no answer marks a closed question.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from fedray.data.sources._files import (
    ImageReader,
    Layout,
    Record,
    build_tables,
    detect_layout,
    hf_records,
    layout_option,
    max_image_side_option,
    read_json_records,
)
from fedray.data.sources.base import DATA_SOURCES, SourceData

SOURCE = "vqa_rad"
TASK = "medical_vqa"
JSON_NAME = "VQA_RAD Dataset Public.json"
IMAGE_DIR = "VQA_RAD Image Folder"
#: fedray split → the ``phrase_type`` values it takes.
PHRASE_TYPES: dict[str, tuple[str, ...]] = {"train": ("freeform", "para"),
                                            "test": ("test_freeform", "test_para")}


@dataclass(frozen=True)
class VqaRadParams:
    reads_files: ClassVar[bool] = True
    max_image_side: Optional[int] = max_image_side_option()
    layout: Layout = layout_option()


@DATA_SOURCES.register("vqa_rad", params=VqaRadParams)
def load_vqa_rad(params: VqaRadParams, root: str) -> SourceData:
    """Image, question and free-text answer, with ``answer_type`` "open"/"closed" and ``question_type``."""
    base = Path(root)
    images = ImageReader(params.max_image_side, root=root)
    layout = detect_layout(base, (JSON_NAME,), params.layout, SOURCE)
    if layout == "original":
        rows = _original_rows(base, images)
    else:
        rows = {split: [_hf_sample(rec, f"{split}-{i}", base, images) for i, rec in enumerate(recs)]
                for split, recs in hf_records(base, layout).items()}
    return SourceData(splits=build_tables(rows, SOURCE), label_names=(), task=TASK)


def _original_rows(base: Path, images: ImageReader) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in PHRASE_TYPES}
    for rec in read_json_records(base / JSON_NAME):
        phrase = str(rec.require("phrase_type")).strip().lower()
        split = next((s for s, kinds in PHRASE_TYPES.items() if phrase in kinds), None)
        if split is not None:
            image = images.file(base / IMAGE_DIR / str(rec.require("image_name")), rec.where)
            answer_type = rec.get("answer_type")
            rows[split].append(_sample(rec.require("qid"), image, rec, answer_type,
                                       rec.get("question_type")))
    return rows


def _hf_sample(rec: Record, key: str, base: Path, images: ImageReader) -> dict[str, Any]:
    closed = _answer(rec).lower().rstrip(".") in ("yes", "no")
    return _sample(key, images.cell(rec.require("image"), base, rec.where), rec,
                   "closed" if closed else "open", None)


def _sample(key: Any, image: bytes | None, rec: Record, answer_type: Any,
            question_type: Any) -> dict[str, Any]:
    return {
        "id": f"{SOURCE}-{key}",
        "image": image,
        "text": None,
        "question": str(rec.require("question")).strip(),
        "choices": None,
        "answer": _answer(rec),
        "label": None,
        "task": TASK,
        "source": SOURCE,
        "answer_type": None if answer_type is None else str(answer_type).strip().lower(),
        "question_type": None if question_type is None else str(question_type).strip(),
    }


def _answer(rec: Record) -> str:
    """The answer as text (the JSON stores some answers as numbers)."""
    return str(rec.require("answer")).strip()
