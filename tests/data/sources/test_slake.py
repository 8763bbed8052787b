"""The "slake" source on a tiny Slake1.0 tree: train/validate/test JSON lists and imgs/xmlab<N>/source.jpg."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from fedray.data.schema import SAMPLE_SCHEMA, decode_image
from fedray.data.sources import read_source
from fedray.errors import ConfigError, DataError


def _qa(qid: int, img: int, question: str, answer: object, lang: str = "en", answer_type: str = "OPEN",
        content: str = "Organ") -> dict:
    return {"img_id": img, "img_name": f"xmlab{img}/source.jpg", "question": question, "answer": answer,
            "q_lang": lang, "location": "Lung", "modality": "CT", "answer_type": answer_type,
            "base_type": "vqa", "content_type": content, "triple": ["vhead", "_", "_"], "qid": qid}


SPLITS = {
    "train.json": [_qa(0, 1, "Which organ is shown?", "Lung"),
                   _qa(1, 1, "图中显示的是哪个器官？", "肺", lang="zh"),
                   _qa(2, 2, "Is this a CT image?", "Yes", answer_type="CLOSED", content="Modality")],
    "validate.json": [_qa(10, 2, "How many lungs?", 2, content="Quantity")],
    "test.json": [_qa(20, 1, "Where is the lesion?", "Left Lung", content="Position"),
                  _qa(21, 1, "病灶在哪里？", "左肺", lang="zh")],
}


def _jpeg(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (60, 60, 60)).save(buf, format="JPEG")
    return buf.getvalue()


def write_release(parent: Path, images: bool = True) -> Path:
    base = parent / "Slake1.0"
    base.mkdir()
    for name, rows in SPLITS.items():
        (base / name).write_text(json.dumps(rows, ensure_ascii=False))
    if images:
        for img, size in ((1, (600, 600)), (2, (32, 16))):
            (base / "imgs" / f"xmlab{img}").mkdir(parents=True)
            (base / "imgs" / f"xmlab{img}" / "source.jpg").write_bytes(_jpeg(size))
    return base


def load(root: Path, **options):
    return read_source("slake", options, str(root))


def test_english_rows_by_split(tmp_path: Path) -> None:
    data = load(write_release(tmp_path))  # the Slake1.0 folder
    assert data.task == "medical_vqa" and data.label_names == ()
    train = data.splits["train"]
    assert train.schema.equals(SAMPLE_SCHEMA)
    assert train.column("id").to_pylist() == ["slake-0", "slake-2"]
    assert train.column("answer").to_pylist() == ["Lung", "Yes"]
    assert train.column("answer_type").to_pylist() == ["open", "closed"]
    assert train.column("question_type").to_pylist() == ["Organ", "Modality"]
    assert data.splits["validation"].column("answer").to_pylist() == ["2"]
    assert data.splits["test"].column("id").to_pylist() == ["slake-20"]
    assert set(train.column("source").to_pylist()) == {"slake"}
    assert decode_image(train.column("image")[0].as_py()).size == (448, 448)
    assert train.column("image")[1].as_py() == (tmp_path / "Slake1.0/imgs/xmlab2/source.jpg").read_bytes()


def test_all_languages(tmp_path: Path) -> None:
    write_release(tmp_path)
    data = load(tmp_path, english_only=False)  # the parent of Slake1.0 works too
    assert data.splits["train"].column("id").to_pylist() == ["slake-0", "slake-1", "slake-2"]
    assert data.splits["test"].column("answer").to_pylist() == ["Left Lung", "左肺"]
    with pytest.raises(ConfigError, match="data.english_only: got 'en' .*expected true or false"):
        load(tmp_path, english_only="en")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train\.json not found; data\.root must be the Slake1\.0 folder"):
        load(tmp_path)
    base = write_release(tmp_path, images=False)
    (base / "imgs.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"imgs not found but .*imgs\.zip is: unzip it in place"):
        load(base)
    (base / "imgs.zip").unlink()
    with pytest.raises(DataError, match=r"imgs not found; extract the SLAKE 1\.0 images"):
        load(base)


def test_bad_records(tmp_path: Path) -> None:
    base = write_release(tmp_path)
    (base / "test.json").write_text(json.dumps([{k: v for k, v in SPLITS["test.json"][0].items()
                                                 if k != "img_name"}]))
    with pytest.raises(DataError, match=r"test\.json record 1 has no field 'img_name'"):
        load(base)
    (base / "test.json").write_text(json.dumps([{k: v for k, v in SPLITS["test.json"][0].items()
                                                 if k != "q_lang"}]))
    with pytest.raises(DataError, match=r"test\.json record 1 has no field 'q_lang'"):
        load(base)
    assert load(base, english_only=False).splits["test"].num_rows == 1


def test_the_hugging_face_copy_names_its_validation_file_validation_json(tmp_path: Path) -> None:
    base = write_release(tmp_path)
    (base / "validate.json").rename(base / "validation.json")  # as BoKelvin/SLAKE ships it
    data = load(base)
    assert data.splits["validation"].column("id").to_pylist() == ["slake-10"]
