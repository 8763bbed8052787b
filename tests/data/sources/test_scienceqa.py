"""The "scienceqa" source on a tiny release (problems.json, pid_splits.json, images/) and an HF copy."""

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
from fedray.errors import ConfigError, DataError


def _problem(question: str, choices: list[str], answer: int, hint: str, image: str | None,
             split: str) -> dict:
    return {"question": question, "choices": choices, "answer": answer, "hint": hint, "image": image,
            "task": "closed choice", "grade": "grade2", "subject": "natural science", "topic": "biology",
            "category": "Classify", "skill": "s", "lecture": "l", "solution": "s", "split": split}


PROBLEMS = {
    "1": _problem("Which is a mammal?", ["frog", "whale", "shark"], 1, "", "image.png", "train"),
    "2": _problem("Which word is a noun?", ["run", "table"], 1, "Nouns name things.", None, "train"),
    "5": _problem("What is the capital of Utah?", ["Denver", "Salt Lake City", "Boise", "Phoenix"], 1, "",
                  "image.png", "train"),
    "7": _problem("Which is hotter?", ["ice", "fire"], 1, "Think about it.", None, "val"),
    "9": _problem("Which force pulls?", ["magnet", "wind"], 0, "", "image.png", "test"),
}
PID_SPLITS = {"train": ["1", "2", "5"], "val": ["7"], "test": ["9"], "minival": ["7"], "trainval": ["1"]}
SIZES = {"1": (900, 300), "5": (40, 30), "9": (10, 10)}


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (250, 250, 0)).save(buf, format="PNG")
    return buf.getvalue()


def write_release(base: Path, problems: dict = PROBLEMS) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "problems.json").write_text(json.dumps(problems))
    (base / "pid_splits.json").write_text(json.dumps(PID_SPLITS))
    for split, pids in PID_SPLITS.items():
        for pid in pids:
            if problems.get(pid, {}).get("image") and split in ("train", "val", "test"):
                (base / "images" / split / pid).mkdir(parents=True)
                (base / "images" / split / pid / "image.png").write_bytes(_png(SIZES[pid]))
    return base


def load(root: Path, **options):
    return read_source("scienceqa", options, str(root))


def test_release_rows(tmp_path: Path) -> None:
    data = load(write_release(tmp_path))
    assert data.task == "science_qa" and data.label_names == ()
    train = data.splits["train"]
    assert train.schema.equals(SAMPLE_SCHEMA)
    assert train.column("id").to_pylist() == ["scienceqa-1", "scienceqa-2", "scienceqa-5"]
    assert train.column("choices").to_pylist()[2] == ["Denver", "Salt Lake City", "Boise", "Phoenix"]
    assert train.column("answer").to_pylist() == ["whale", "table", "Salt Lake City"]
    assert train.column("label").to_pylist() == [1, 1, 1]
    assert train.column("text").to_pylist() == [None, "Nouns name things.", None]
    assert train.column("image").null_count == 1
    assert decode_image(train.column("image")[0].as_py()).size == (448, 149)
    assert train.column("image")[2].as_py() == (tmp_path / "images/train/5/image.png").read_bytes()
    assert data.splits["validation"].column("id").to_pylist() == ["scienceqa-7"]
    assert data.splits["test"].column("answer").to_pylist() == ["magnet"]
    assert set(train.column("task").to_pylist()) == {"science_qa"}


def test_data_subfolder_and_require_image(tmp_path: Path) -> None:
    write_release(tmp_path / "data" / "scienceqa")
    data = load(tmp_path, require_image=True)
    assert data.splits["train"].column("id").to_pylist() == ["scienceqa-1", "scienceqa-5"]
    assert set(data.splits) == {"train", "test"}, "the validation split has no image problems"
    with pytest.raises(ConfigError, match="data.require_image: got 1 .*expected true or false"):
        load(tmp_path, require_image=1)


def test_parquet_snapshot(tmp_path: Path) -> None:
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    (tmp_path / "data").mkdir()
    for split, pids in (("train", ["1", "2"]), ("validation", ["7"]), ("test", ["9"])):
        rows = [PROBLEMS[p] for p in pids]
        images = [{"bytes": _png(SIZES[p]), "path": None} if PROBLEMS[p]["image"] else None for p in pids]
        table = pa.table({"image": pa.array(images, image_type), "question": [r["question"] for r in rows],
                          "choices": [r["choices"] for r in rows], "answer": [r["answer"] for r in rows],
                          "hint": [r["hint"] for r in rows]})
        pq.write_table(table, tmp_path / "data" / f"{split}-00000-of-00001-5f1e3a.parquet")
    data = load(tmp_path)
    train = data.splits["train"]
    assert train.column("id").to_pylist() == ["scienceqa-train-0", "scienceqa-train-1"]
    assert train.column("answer").to_pylist() == ["whale", "table"]
    assert decode_image(train.column("image")[0].as_py()).size == (448, 149)
    assert train.column("image")[1].as_py() is None
    assert data.splits["validation"].column("text").to_pylist() == ["Think about it."]
    assert load(tmp_path, require_image=True).splits["train"].num_rows == 1


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'scienceqa' found no dataset under .*problems\.json"):
        load(tmp_path)
    write_release(tmp_path)
    (tmp_path / "pid_splits.json").unlink()
    with pytest.raises(DataError, match=r"pid_splits\.json not found; data\.root must hold problems\.json"):
        load(tmp_path)


def test_bad_problems(tmp_path: Path) -> None:
    write_release(tmp_path, {**PROBLEMS, "2": {**PROBLEMS["2"], "answer": 2}})
    with pytest.raises(DataError, match=r"problems\.json problem '2': answer 2 is not an index into its 2 "
                                        "choices"):
        load(tmp_path)
    (tmp_path / "problems.json").write_text(json.dumps({k: v for k, v in PROBLEMS.items() if k != "5"}))
    with pytest.raises(DataError, match=r"lists problem '5' under 'train' but .*problems\.json has no such"):
        load(tmp_path)
    broken = {k: {f: v for f, v in p.items() if f != "choices"} for k, p in PROBLEMS.items()}
    (tmp_path / "problems.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"problems\.json problem '1' has no field 'choices'"):
        load(tmp_path)
    (tmp_path / "images/train/1/image.png").unlink()
    (tmp_path / "problems.json").write_text(json.dumps(PROBLEMS))
    with pytest.raises(DataError, match=r"problem '1': image .*images/train/1/image\.png not found"):
        load(tmp_path)
