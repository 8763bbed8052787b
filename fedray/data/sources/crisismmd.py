"""The "crisismmd" source: CrisisMMD v2.0 (Alam et al. 2018) disaster tweets with their images.

Reads the benchmark splits of the release, ``CrisisMMD_v2.0/crisismmd_datasplit_all/
task_<task>_text_img_{train,dev,test}.tsv`` (tab-separated, header ``event_name, tweet_id, image_id,
tweet_text, image, label, label_text, label_image, label_text_image``) and the images under
``data_image/``. One sample per tweet image; the label comes from ``label_field`` (the image label, as the
FedMLLM reference uses). Tweet text loses its URLs (``http\\S+``) and surrounding whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from fedray.config.schema import spec
from fedray.data.sources._files import (
    ImageReader,
    Record,
    build_tables,
    find_base,
    max_image_side_option,
    read_tsv,
)
from fedray.data.sources.base import DATA_SOURCES, SourceData
from fedray.errors import DataError

SOURCE = "crisismmd"
SPLIT_DIR = "crisismmd_datasplit_all"
#: Answer vocabulary per task, in label-index order (humanitarian: the reference's option order A-H).
LABELS: dict[str, tuple[str, ...]] = {
    "humanitarian": ("affected_individuals", "infrastructure_and_utility_damage", "injured_or_dead_people",
                     "missing_or_found_people", "rescue_volunteering_or_donation_effort", "vehicle_damage",
                     "other_relevant_information", "not_humanitarian"),
    "informative": ("informative", "not_informative"),
    "damage": ("severe_damage", "mild_damage", "little_or_no_damage"),
}
QUESTIONS: dict[str, str] = {
    "humanitarian": "What is the humanitarian category?",
    "informative": "Is this tweet informative?",
    "damage": "How severe is the damage?",
}
LabelField = Literal["label_image", "label_text", "label", "label_text_image"]
#: fedray split → the file suffix of the release.
SPLIT_FILES: dict[str, str] = {"train": "train", "validation": "dev", "test": "test"}
_URL = re.compile(r"http\S+")


@dataclass(frozen=True)
class CrisisMMDParams:
    reads_files: ClassVar[bool] = True
    task: Literal["humanitarian", "informative", "damage"] = spec("humanitarian", help="the benchmark task")
    label_field: LabelField = spec("label_image", help="the TSV column the label is read from")
    agreed: bool = spec(False, help="read the agreed_lab files (text and image labels agree)")
    max_image_side: Optional[int] = max_image_side_option()


@DATA_SOURCES.register("crisismmd", params=CrisisMMDParams)
def load_crisismmd(params: CrisisMMDParams, root: str) -> SourceData:
    """One CrisisMMD task as a multiple-choice question over each tweet's image and text.

    ``root`` is ``CrisisMMD_v2.0/`` or the folder holding it.
    """
    task, label_field, agreed = params.task, params.label_field, params.agreed
    base = find_base(Path(root), SPLIT_DIR, ("CrisisMMD_v2.0",))
    images = ImageReader(params.max_image_side, root=root)
    rows: dict[str, list[dict[str, Any]]] = {}
    for split, suffix in SPLIT_FILES.items():
        path = _split_file(base, task, agreed, suffix, required=split == "train")
        if path is not None:
            rows[split] = [_sample(rec, task, label_field, base, images) for rec in read_tsv(path)]
    return SourceData(splits=build_tables(rows, SOURCE), label_names=LABELS[task], task=f"{SOURCE}_{task}")


def _split_file(base: Path, task: str, agreed: bool, suffix: str, required: bool) -> Path | None:
    """The split's TSV (agreed-label files exist under two spellings); ``None`` for an absent optional one."""
    names = [f"task_{task}_text_img_{suffix}.tsv"]
    if agreed:
        names = [f"task_{task}_text_img_agreed_lab_{suffix}.tsv",
                 f"task_{task}_agreed_lab_text_img_{suffix}.tsv"]
    for name in names:
        if (base / SPLIT_DIR / name).is_file():
            return base / SPLIT_DIR / name
    if required:
        raise DataError(f"{base / SPLIT_DIR / names[0]} not found; data.root must be the CrisisMMD_v2.0 "
                        f"folder (or its parent) holding {SPLIT_DIR}/ and data_image/: extract the "
                        "CrisisMMD v2.0 release and its benchmark data split archive there")
    return None


def _sample(rec: Record, task: str, label_field: str, base: Path, images: ImageReader) -> dict[str, Any]:
    labels = LABELS[task]
    answer = str(rec.require(label_field)).strip()
    if answer not in labels:
        raise DataError(f"{rec.where}: {label_field} {answer!r} is not a {task} label; allowed: "
                        f"{', '.join(labels)}. Check data.task and data.label_field match the file")
    text = _URL.sub("", str(rec.get("tweet_text", ""))).strip()
    return {
        "id": f"{SOURCE}-{rec.require('image_id')}",
        "image": images.file(base / str(rec.require("image")).strip(), rec.where),
        "text": text or None,
        "question": QUESTIONS[task],
        "choices": list(labels),
        "answer": answer,
        "label": labels.index(answer),
        "task": f"{SOURCE}_{task}",
        "source": SOURCE,
    }
