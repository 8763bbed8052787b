"""The "slake" source: SLAKE 1.0 (Liu et al. 2021), bilingual medical VQA over CT, MRI and X-ray images.

Reads ``Slake1.0/`` as released (and as the Hugging Face copy ships it once ``imgs.zip`` is extracted):
``train.json`` / ``validate.json`` / ``test.json`` (JSON lists with ``qid``, ``img_name``, ``question``,
``answer``, ``q_lang``, ``answer_type``, ``content_type``) and ``imgs/<img_name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from fedray.config.schema import spec
from fedray.data.sources._files import (
    ImageReader,
    Record,
    build_tables,
    find_base,
    max_image_side_option,
    read_json_records,
    require_file,
)
from fedray.data.sources.base import DATA_SOURCES, SourceData
from fedray.errors import DataError

SOURCE = "slake"
TASK = "medical_vqa"
#: fedray split → the release's file.
#: fedray split → its file in the release (the Hugging Face copy renames validate.json to validation.json).
SPLIT_FILES: dict[str, tuple[str, ...]] = {"train": ("train.json",),
                                           "validation": ("validate.json", "validation.json"),
                                           "test": ("test.json",)}


@dataclass(frozen=True)
class SlakeParams:
    reads_files: ClassVar[bool] = True
    english_only: bool = spec(True, help="keep the English questions (q_lang == en) only; the FedMLLM "
                                         "reference scores every language (false), as the paper scenarios do")
    max_image_side: Optional[int] = max_image_side_option()


@DATA_SOURCES.register("slake", params=SlakeParams)
def load_slake(params: SlakeParams, root: str) -> SourceData:
    """Image, question and free-text answer; ``english_only`` keeps the ``q_lang == "en"`` questions.

    ``answer_type`` is "open"/"closed" and ``question_type`` the SLAKE ``content_type`` (Organ, Plane, ...).
    ``root`` is ``Slake1.0/`` or the folder holding it.
    """
    english_only = params.english_only
    base = find_base(Path(root), "train.json", ("Slake1.0",))
    require_file(base / "train.json", "data.root must be the Slake1.0 folder (or its parent) holding "
                 "train.json, validate.json, test.json and imgs/; extract the SLAKE 1.0 release there")
    image_dir = _image_dir(base)
    images = ImageReader(params.max_image_side, root=root)
    rows: dict[str, list[dict[str, Any]]] = {}
    for split, names in SPLIT_FILES.items():
        name = next((n for n in names if (base / n).is_file()), None)
        if name is not None:
            rows[split] = [_sample(rec, image_dir, images) for rec in read_json_records(base / name)
                           if not english_only or rec.require("q_lang") == "en"]
    return SourceData(splits=build_tables(rows, SOURCE), label_names=(), task=TASK)


def _image_dir(base: Path) -> Path:
    """``imgs/``, with a pointed error when only the Hugging Face ``imgs.zip`` is there."""
    if (base / "imgs").is_dir():
        return base / "imgs"
    if (base / "imgs.zip").is_file():
        raise DataError(f"{base / 'imgs'} not found but {base / 'imgs.zip'} is: unzip it in place "
                        f"(cd {base} && unzip imgs.zip) so that imgs/xmlab0/source.jpg exists")
    raise DataError(f"{base / 'imgs'} not found; extract the SLAKE 1.0 images so that "
                    "imgs/xmlab0/source.jpg exists beside train.json")


def _sample(rec: Record, image_dir: Path, images: ImageReader) -> dict[str, Any]:
    answer_type, content_type = rec.get("answer_type"), rec.get("content_type")
    return {
        "id": f"{SOURCE}-{rec.require('qid')}",
        "image": images.file(image_dir / str(rec.require("img_name")), rec.where),
        "text": None,
        "question": str(rec.require("question")).strip(),
        "choices": None,
        "answer": str(rec.require("answer")).strip(),
        "label": None,
        "task": TASK,
        "source": SOURCE,
        "answer_type": None if answer_type is None else str(answer_type).strip().lower(),
        "question_type": None if content_type is None else str(content_type).strip(),
    }
