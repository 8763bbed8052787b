"""The "scienceqa" source: ScienceQA (Lu et al. 2022), multiple-choice science questions, half with images.

Reads the release, ``problems.json`` (problems keyed by id) + ``pid_splits.json`` (``train``/``val``/
``test`` id lists) + ``images/<split>/<pid>/image.png`` under ``data.root`` or ``data.root/data/
scienceqa``, or a Hugging Face copy (``derek-thomas/ScienceQA``: the same fields per row, ``image`` an
image struct or null, splits train/validation/test). The hint is the context text.
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
    find_base,
    hf_records,
    layout_option,
    max_image_side_option,
    read_json,
    require_file,
    standard_splits,
)
from fedray.data.sources.base import DATA_SOURCES, SourceData
from fedray.errors import DataError

SOURCE = "scienceqa"
TASK = "science_qa"
SUBDIR = "data/scienceqa"


@dataclass(frozen=True)
class ScienceQAParams:
    reads_files: ClassVar[bool] = True
    require_image: bool = spec(False, help="keep only the problems that have an image")
    max_image_side: Optional[int] = max_image_side_option()
    layout: Layout = layout_option()


@DATA_SOURCES.register("scienceqa", params=ScienceQAParams)
def load_scienceqa(params: ScienceQAParams, root: str) -> SourceData:
    """Question, choices and the correct choice (``label`` = its index), with the image where there is one."""
    base = find_base(Path(root), "problems.json", (SUBDIR,))
    images = ImageReader(params.max_image_side, root=root)
    layout = detect_layout(base, ("problems.json",), params.layout, SOURCE)
    if layout == "original":
        rows = _original_rows(base, images)
    else:
        rows = {split: [_sample(f"{split}-{i}", rec, images.cell(rec.get("image"), base, rec.where))
                        for i, rec in enumerate(recs)]
                for split, recs in hf_records(base, layout).items()}
    if params.require_image:
        rows = {split: [row for row in split_rows if row["image"] is not None]
                for split, split_rows in rows.items()}
    return SourceData(splits=build_tables(rows, SOURCE), label_names=(), task=TASK)


def _original_rows(base: Path, images: ImageReader) -> dict[str, list[dict[str, Any]]]:
    """Rows by fedray split from problems.json, pid_splits.json and images/<split>/<pid>/."""
    fix = (f"data.root must hold problems.json, pid_splits.json and images/ (directly or under {SUBDIR}/); "
           "extract the ScienceQA release there")
    problems = read_json(require_file(base / "problems.json", fix))
    pid_splits = read_json(require_file(base / "pid_splits.json", fix))
    if not isinstance(problems, dict) or not isinstance(pid_splits, dict):
        raise DataError(f"{base} holds problems.json or pid_splits.json that is not a JSON object; "
                        "expected problems keyed by id and split name -> list of ids")
    rows: dict[str, list[dict[str, Any]]] = {}
    for split, (raw, pids) in standard_splits({k: (k, v) for k, v in pid_splits.items()}).items():
        rows[split] = []
        for pid in pids:
            if not isinstance(problems.get(str(pid)), dict):
                raise DataError(f"{base / 'pid_splits.json'} lists problem {pid!r} under {raw!r} but "
                                f"{base / 'problems.json'} has no such problem; use files of one release")
            rec = Record(problems[str(pid)], f"{base / 'problems.json'} problem {pid!r}")
            name = rec.get("image")
            image = None if name is None else images.file(base / "images" / raw / str(pid) / str(name),
                                                          rec.where)
            rows[split].append(_sample(pid, rec, image))
    return rows


def _sample(key: Any, rec: Record, image: bytes | None) -> dict[str, Any]:
    choices = [str(c) for c in rec.require("choices")]
    index = rec.require("answer")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(choices):
        raise DataError(f"{rec.where}: answer {index!r} is not an index into its {len(choices)} choices "
                        f"{choices}")
    hint = str(rec.get("hint", "")).strip()
    return {
        "id": f"{SOURCE}-{key}",
        "image": image,
        "text": hint or None,
        "question": str(rec.require("question")).strip(),
        "choices": choices,
        "answer": choices[index],
        "label": index,
        "task": TASK,
        "source": SOURCE,
    }
