"""The "hf" source: any Hugging Face dataset on this machine, mapped onto the sample schema by column names.

``data.root`` is a ``save_to_disk`` folder, a folder (or one file) of parquet / arrow / json / csv data, or
a folder of images (``imagefolder``: ``<split>/<label>/<image>``); or ``data.dataset`` names a dataset id
already in the local Hugging Face cache. It is read with ``datasets``, offline (see
:mod:`fedray.data.sources._hf_open`). ``data.columns`` says which column fills each sample field; a field
left null takes the column of its own name when the dataset has one. A column named explicitly must exist:
the error lists the columns that do. ``data.splits`` names the dataset's splits for fedray's train,
validation and test (missing ones are drawn from train, as for every source).

The target comes from ``answer``; an integer answer indexes ``choices`` (or ``label_names``), and a row
without an answer takes the choice or label name its ``label`` points at. Label names come from
``data.label_names``, else the label column's ``ClassLabel`` names, else its distinct strings. Rows with
neither choices nor label names are open-ended questions, scored by exact match (``answer_type`` "open").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional

from fedray.config.schema import spec
from fedray.data.sources._files import SPLIT_NAMES, ImageReader, build_tables, max_image_side_option
from fedray.data.sources._hf_open import (
    Format,
    cached_dataset_snapshot,
    dataset_signature,
    fingerprints,
    open_dataset,
)
from fedray.data.sources.base import DATA_SOURCES, SourceData
from fedray.errors import DataError


@dataclass(frozen=True)
class HFColumns:
    """The dataset column that fills each sample field (null: the column of the field's name, if any)."""

    id: Optional[str] = spec(None, help="a unique row id (none: <split>-<row>)")
    image: Optional[str] = spec(None, help="an Image feature, encoded bytes or a path under data.root")
    text: Optional[str] = spec(None, help="context text shown with the question")
    question: Optional[str] = spec(None, help="the question (or set data.fixed_question)")
    choices: Optional[str] = spec(None, help="a list of answer options (multiple choice)")
    answer: Optional[str] = spec(None, help="the target: a string, or an index into choices/label_names")
    label: Optional[str] = spec(None, help="the class: an integer, a ClassLabel or a label string")
    answer_type: Optional[str] = spec(None, help="open/closed, for open-ended VQA scoring")
    question_type: Optional[str] = spec(None, help="the dataset's question type, for per-type scores")


@dataclass(frozen=True)
class HFSplits:
    """The dataset's split behind each fedray split."""

    train: str = spec("train", help="the training split")
    validation: Optional[str] = spec(None, help="null: validation, val or dev if the dataset has one")
    test: Optional[str] = spec(None, help="null: test if the dataset has one")


@dataclass(frozen=True)
class HFParams:
    reads_files: ClassVar[bool] = True
    dataset: Optional[str] = spec(None, help="a dataset id in the local Hugging Face cache (org/name); "
                                             "data.root is then not read")
    config: Optional[str] = spec(None, help="the dataset's configuration (subset) name")
    format: Format = spec("auto", help="how to read data.root: disk (save_to_disk), parquet, arrow, json, "
                                       "csv, imagefolder, or auto (whichever is there)")
    columns: HFColumns = spec(default_factory=HFColumns, help="dataset column of each sample field")
    splits: HFSplits = spec(default_factory=HFSplits, help="dataset split of each fedray split")
    fixed_question: Optional[str] = spec(None, help="the question asked of every row (datasets without "
                                                    "a question column, e.g. classification)")
    label_names: tuple[str, ...] = spec((), help="answer word of each label (empty: from the dataset)")
    task: str = spec("hf", help="the task name the samples carry")
    name: str = spec("hf", help="the samples' source name and id prefix")
    max_image_side: Optional[int] = max_image_side_option()

    @classmethod
    def needs_root(cls, options: Mapping[str, Any]) -> bool:
        """A dataset named by cache id needs no data.root."""
        return not options.get("dataset")

    def problems(self) -> list[str]:
        if self.fixed_question is not None and self.columns.question is not None:
            return ["fixed_question: set either fixed_question or columns.question, not both"]
        return []


@DATA_SOURCES.register("hf", params=HFParams)
def load_hf(params: HFParams, root: str | None) -> SourceData:
    """The dataset's splits as sample tables, read once per content (path, size and mtime of its files)."""
    base = Path(root).expanduser() if root and not params.dataset else None
    snapshot = cached_dataset_snapshot(params.dataset) if params.dataset else None
    files = Path(snapshot) if snapshot else base
    return _load(params, base, files, dataset_signature(files))


@functools.lru_cache(maxsize=2)
def _load(params: HFParams, base: Path | None, files: Path | None, signature: tuple[Any, ...]) -> SourceData:
    """``signature`` (the files' paths, sizes and mtimes) is in the cache key only."""
    raw = open_dataset(base, params.format, params.dataset, params.config)
    where = params.dataset or str(base)
    chosen = _choose_splits(raw, params.splits, where)
    label_names = _label_names(raw[chosen["train"]], params, where)
    images = ImageReader(params.max_image_side)
    image_root = files if files is None or files.is_dir() else files.parent  # relative image paths
    rows = {split: _rows(raw[name], name, params, label_names, image_root, images, where)
            for split, name in chosen.items()}
    return SourceData(splits=build_tables(rows, params.name), label_names=label_names, task=params.task,
                      notes={"fingerprints": fingerprints({n: raw[n] for n in chosen.values()})})


def _choose_splits(raw: Mapping[str, Any], splits: HFSplits, where: str) -> dict[str, str]:
    """fedray split → dataset split; a named split must exist, a null one is found by its usual names."""
    available = ", ".join(sorted(raw)) or "(none)"
    named = {field: getattr(splits, field) for field in ("train", "validation", "test")}
    for field, name in named.items():
        if name is not None and name not in raw:
            raise DataError(f"data.splits.{field}: split {name!r} is not in {where}; its splits are "
                            f"{available}")
    taken = {name for name in named.values() if name is not None}
    for field, name in named.items():
        if name is None:  # its usual names, unless the scenario gave that split another role
            named[field] = next((n for n in raw if SPLIT_NAMES.get(n) == field and n not in taken), None)
    return {field: name for field, name in named.items() if name is not None}


def _label_names(train: Any, params: HFParams, where: str) -> tuple[str, ...]:
    """``label_names`` given, else the ClassLabel names, else the label column's distinct strings."""
    if params.label_names:
        return tuple(params.label_names)
    column = _mapping(train.column_names, params.columns, "train", where).get("label")
    if column is None:
        return ()
    feature = train.features[column]
    if hasattr(feature, "names"):
        return tuple(str(n) for n in feature.names)
    values = {v for v in train.with_format("arrow")[:].column(column).to_pylist() if v is not None}
    return tuple(sorted(values)) if values and all(isinstance(v, str) for v in values) else ()


def _mapping(names: list[str], columns: HFColumns, split: str, where: str) -> dict[str, str | None]:
    """Sample field → dataset column, checking that every column named explicitly exists."""
    out: dict[str, str | None] = {}
    for f in fields(HFColumns):
        chosen = getattr(columns, f.name)
        if chosen is not None and chosen not in names:
            raise DataError(f"data.columns.{f.name}: column {chosen!r} is not in split {split!r} of {where}; "
                            f"its columns are {names}")
        out[f.name] = chosen if chosen is not None else (f.name if f.name in names else None)
    return out


def _rows(ds: Any, split: str, params: HFParams, label_names: tuple[str, ...], image_root: Path | None,
          images: ImageReader, where: str) -> list[dict[str, Any]]:
    """The samples of one dataset split (images as their stored ``{bytes, path}`` cells, not decoded)."""
    mapping = _mapping(ds.column_names, params.columns, split, where)
    if mapping["question"] is None and params.fixed_question is None:
        raise DataError(f"split {split!r} of {where} has no 'question' column (columns: {ds.column_names}); "
                        "name one with data.columns.question, or set data.fixed_question")
    if mapping["answer"] is None and mapping["label"] is None:
        raise DataError(f"split {split!r} of {where} has neither an 'answer' nor a 'label' column (columns: "
                        f"{ds.column_names}); name one with data.columns.answer or data.columns.label")
    table = ds.with_format("arrow")[:]
    values = {key: table.column(col).to_pylist() if col else [None] * table.num_rows
              for key, col in mapping.items()}
    rows = []
    for i in range(table.num_rows):
        cell = {key: column[i] for key, column in values.items()}
        row_where = f"{where} split {split!r} row {i + 1}"
        rows.append(_sample(cell, f"{split}-{i}", params, label_names, row_where)
                    | {"image": images.cell(cell["image"], image_root or Path("."), row_where)})
    return rows


def _sample(cell: dict[str, Any], key: str, params: HFParams, label_names: tuple[str, ...],
            where: str) -> dict[str, Any]:
    choices = _choices(cell["choices"], where)
    label = _label(cell["label"], label_names, where)
    answer, label = _answer(cell["answer"], label, choices, label_names, where)
    open_ended = not choices and not label_names
    return {
        "id": f"{params.name}-{cell['id'] if cell['id'] is not None else key}",
        "text": None if cell["text"] is None else str(cell["text"]),
        "question": str(cell["question"] if cell["question"] is not None else params.fixed_question),
        "choices": choices,
        "answer": answer,
        "label": label,
        "task": params.task,
        "source": params.name,
        "answer_type": cell["answer_type"] or ("open" if open_ended else None),
        "question_type": cell["question_type"],
    }


def _choices(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{where}: choices {value!r} is not a list; name a list column in "
                        "data.columns.choices")
    return [str(c) for c in value]


def _label(value: Any, label_names: tuple[str, ...], where: str) -> int | None:
    """An integer label; a string label becomes its index in ``label_names``."""
    if value is None or (isinstance(value, int) and value < 0):  # -1: unlabeled, as ClassLabel writes it
        return None
    if isinstance(value, str):
        if value not in label_names:
            raise DataError(f"{where}: label {value!r} is not one of the label names {list(label_names)}; "
                            "list every label in data.label_names")
        return label_names.index(value)
    return int(value)


def _answer(value: Any, label: int | None, choices: list[str] | None, label_names: tuple[str, ...],
            where: str) -> tuple[str, int | None]:
    """(target string, label): an integer answer or a missing one resolves through choices/label names."""
    if isinstance(value, str):
        return value, label
    index = label if value is None else value
    names = choices or list(label_names)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(names):
        what = "answer" if value is not None else "label"
        raise DataError(f"{where}: {what} {index!r} does not index its "
                        f"{'choices' if choices else 'label names'} {names}; map a string answer column "
                        "with data.columns.answer, or set data.label_names")
    return names[index], index if label is None else label
