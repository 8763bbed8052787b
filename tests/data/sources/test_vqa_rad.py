"""The "vqa_rad" source on a tiny copy of the OSF release and of the Hugging Face parquet snapshot."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fedray.data.schema import SAMPLE_SCHEMA, decode_image
from fedray.data.sources import read_source
from fedray.errors import DataError

JSON_NAME = "VQA_RAD Dataset Public.json"
RECORDS = [
    {"qid": 0, "image_name": "synpic54610.jpg", "question": "Are regions of the brain infarcted?",
     "answer": "Yes", "answer_type": "CLOSED", "question_type": "PRES", "phrase_type": "freeform"},
    {"qid": 1, "image_name": "synpic54610.jpg", "question": "How many lesions are there?", "answer": 2,
     "answer_type": "OPEN", "question_type": "COUNT", "phrase_type": "para"},
    {"qid": 2, "image_name": "synpic29265.jpg", "question": "What is the location of the mass?",
     "answer": "left lung", "answer_type": "OPEN", "question_type": "POS", "phrase_type": "frame"},
    {"qid": 3, "image_name": "synpic29265.jpg", "question": "Is this an MRI?", "answer": "no",
     "answer_type": "CLOSED", "question_type": "MODALITY", "phrase_type": "test_freeform"},
    {"qid": 4, "image_name": "synpic29265.jpg", "question": " What organ is shown? ", "answer": "chest",
     "answer_type": "OPEN", "question_type": "ORGAN", "phrase_type": "test_para"},
]
SIZES = {"synpic54610.jpg": (512, 256), "synpic29265.jpg": (24, 24)}


def _jpeg(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buf, format="JPEG")
    return buf.getvalue()


def write_release(root: Path, records: list[dict] = RECORDS) -> Path:
    (root / "VQA_RAD Image Folder").mkdir(parents=True)
    for name, size in SIZES.items():
        (root / "VQA_RAD Image Folder" / name).write_bytes(_jpeg(size))
    (root / JSON_NAME).write_text(json.dumps(records, indent=2))
    return root


def load(root: Path, **options):
    return read_source("vqa_rad", options, str(root))


def test_release_splits_by_phrase_type(tmp_path: Path) -> None:
    data = load(write_release(tmp_path))
    assert set(data.splits) == {"train", "test"} and data.task == "medical_vqa" and data.label_names == ()
    train, test = data.splits["train"], data.splits["test"]
    assert train.schema.equals(SAMPLE_SCHEMA)
    assert train.column("id").to_pylist() == ["vqa_rad-0", "vqa_rad-1"]
    assert train.column("answer").to_pylist() == ["Yes", "2"], "numeric answers become strings"
    assert train.column("answer_type").to_pylist() == ["closed", "open"]
    assert train.column("question_type").to_pylist() == ["PRES", "COUNT"]
    assert test.column("id").to_pylist() == ["vqa_rad-3", "vqa_rad-4"]
    assert test.column("question").to_pylist() == ["Is this an MRI?", "What organ is shown?"]
    for column in ("text", "choices", "label"):
        assert train.column(column).null_count == 2
    assert set(test.column("source").to_pylist()) == {"vqa_rad"}
    assert decode_image(train.column("image")[0].as_py()).size == (448, 224)
    original = (tmp_path / "VQA_RAD Image Folder" / "synpic29265.jpg").read_bytes()
    assert test.column("image")[0].as_py() == original


def test_parquet_snapshot(tmp_path: Path) -> None:
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    (tmp_path / "data").mkdir()
    for split, rows in (("train", [("are the lungs normal?", "yes"), ("what organ?", "brain")]),
                        ("test", [("is there a fracture?", "No"), ("size?", "3 cm")])):
        table = pa.table({"image": pa.array([{"bytes": _jpeg((16, 12)), "path": None}] * 2, image_type),
                          "question": [q for q, _ in rows], "answer": [a for _, a in rows]})
        pq.write_table(table, tmp_path / "data" / f"{split}-00000-of-00001.parquet")
    data = load(tmp_path)
    assert data.splits["train"].column("id").to_pylist() == ["vqa_rad-train-0", "vqa_rad-train-1"]
    assert data.splits["train"].column("answer_type").to_pylist() == ["closed", "open"]
    assert data.splits["test"].column("answer_type").to_pylist() == ["closed", "open"]
    assert data.splits["test"].column("question_type").null_count == 2
    assert decode_image(data.splits["test"].column("image")[1].as_py()).size == (16, 12)


def test_missing_root_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'vqa_rad' found no dataset under .*VQA_RAD Dataset Public\.json"):
        load(tmp_path)


def test_bad_records(tmp_path: Path) -> None:
    write_release(tmp_path, [RECORDS[0], {k: v for k, v in RECORDS[1].items() if k != "question"}])
    with pytest.raises(DataError, match=r"Public\.json record 2 has no field 'question'"):
        load(tmp_path)
    (tmp_path / JSON_NAME).write_text(json.dumps([{**RECORDS[0], "image_name": "synpic1.jpg"}]))
    with pytest.raises(DataError, match=r"record 1: image .*synpic1\.jpg not found"):
        load(tmp_path)
    (tmp_path / JSON_NAME).write_text('[{"qid": 0,}]')
    with pytest.raises(DataError, match=r"Public\.json is not valid JSON \(line 1"):
        load(tmp_path)
