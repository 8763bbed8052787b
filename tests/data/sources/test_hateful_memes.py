"""The "hateful_memes" source on tiny copies of the release (img/ + JSON lines) and of HF layouts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fedray.data.schema import SAMPLE_SCHEMA, decode_image
from fedray.data.sources import load_source, read_source
from fedray.errors import ConfigError, DataError

TRAIN = [{"id": 42953, "img": "img/42953.png", "label": 0, "text": "its their character not their color"},
         {"id": 23058, "img": "img/23058.png", "label": 1, "text": "don't be afraid"},
         {"id": 1235, "img": "img/01235.png", "label": 0, "text": "putting bows on your pet"}]
DEV = [{"id": 8291, "img": "img/08291.png", "label": 1, "text": "white people is this a shooting range"},
       {"id": 46971, "img": "img/46971.png", "label": 0, "text": "bravery at its finest"}]
TEST = [{"id": 16395, "img": "img/16395.png", "label": 1, "text": "handjobs sold seperately"}]
UNSEEN = [{"id": 37405, "img": "img/37405.png", "text": "no label here"}]
SIZES = {42953: (600, 300)}  # every other image is 20x10


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 40)).save(buf, format="PNG")
    return buf.getvalue()


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_release(root: Path, dev: str = "dev_seen", test: str = "test_seen") -> Path:
    (root / "img").mkdir(parents=True)
    for name, rows in (("train", TRAIN), (dev, DEV), (test, TEST), ("test_unseen", UNSEEN)):
        _write_jsonl(root / f"{name}.jsonl", rows)
        for row in rows:
            (root / row["img"]).write_bytes(_png(SIZES.get(row["id"], (20, 10))))
    return root


def load(root: Path, **options):
    return read_source("hateful_memes", options, str(root))


def test_release_rows_and_splits(tmp_path: Path) -> None:
    data = load(write_release(tmp_path))
    assert set(data.splits) == {"train", "validation", "test"}
    assert data.label_names == ("not-hateful", "hateful") and data.task == "hateful_memes"
    train = data.splits["train"]
    assert train.schema.equals(SAMPLE_SCHEMA)
    assert train.column("id").to_pylist() == ["hateful_memes-42953", "hateful_memes-23058",
                                              "hateful_memes-1235"]
    assert train.column("text").to_pylist() == [r["text"] for r in TRAIN]
    assert train.column("label").to_pylist() == [0, 1, 0]
    assert train.column("answer").to_pylist() == ["not-hateful", "hateful", "not-hateful"]
    assert set(train.column("question").to_pylist()) == {"Is the content hateful?"}
    assert train.column("choices").to_pylist()[0] == ["not-hateful", "hateful"]
    assert set(train.column("task").to_pylist()) == {"hateful_memes"}
    assert set(train.column("source").to_pylist()) == {"hateful_memes"}
    assert data.splits["validation"].column("id").to_pylist() == ["hateful_memes-8291", "hateful_memes-46971"]
    assert data.splits["test"].column("label").to_pylist() == [1]


def test_images_downscaled_only_when_larger(tmp_path: Path) -> None:
    train = load(write_release(tmp_path)).splits["train"]
    assert decode_image(train.column("image")[0].as_py()).size == (448, 224)
    assert train.column("image")[1].as_py() == (tmp_path / "img" / "23058.png").read_bytes()
    full = load(tmp_path, max_image_side=None).splits["train"]
    assert full.column("image")[0].as_py() == (tmp_path / "img" / "42953.png").read_bytes()
    small = load(tmp_path, max_image_side=100).splits["train"]
    assert decode_image(small.column("image")[0].as_py()).size == (100, 50)


def test_phase_one_file_names(tmp_path: Path) -> None:
    data = load(write_release(tmp_path, dev="dev", test="test"))
    assert data.splits["validation"].num_rows == 2 and data.splits["test"].num_rows == 1


def test_test_split_option(tmp_path: Path) -> None:
    write_release(tmp_path)
    data = load(tmp_path, test_split="dev_seen")
    assert data.splits["test"].num_rows == 2 and "validation" not in data.splits
    with pytest.raises(DataError, match=r"test_unseen\.jsonl line 1 has no label: this split is unlabeled.*"
                                         r"choose a labeled split with data\.test_split"):
        load(tmp_path, test_split="test_unseen")
    with pytest.raises(DataError, match="test_split 'test_hidden' is not a split .*available: dev_seen, "
                                        "test_seen, test_unseen, train"):
        load(tmp_path, test_split="test_hidden")


def test_through_load_source(tmp_path: Path) -> None:
    splits = load_source("hateful_memes", str(write_release(tmp_path)), {"max_image_side": 64}, seed=0,
                         test_fraction=0.2)
    assert (splits.train.num_rows, splits.validation.num_rows, splits.test.num_rows) == (3, 2, 1)
    with pytest.raises(ConfigError, match="data.image_size: unknown key .*known keys: max_image_side, "
                                          "layout, test_split"):
        load_source("hateful_memes", str(tmp_path), {"image_size": 3}, seed=0, test_fraction=0.2)


def _image_struct(row: dict) -> dict:
    return {"bytes": _png(SIZES.get(row["id"], (20, 10))), "path": Path(row["img"]).name}


def test_parquet_and_arrow_layouts(tmp_path: Path) -> None:
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    (tmp_path / "hub" / "data").mkdir(parents=True)
    for split, rows in (("train", TRAIN), ("validation", DEV), ("test", TEST)):
        table = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows],
                          "label": [r["label"] for r in rows],
                          "img": pa.array([_image_struct(r) for r in rows], image_type)})
        pq.write_table(table, tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet")
        (tmp_path / "disk" / split).mkdir(parents=True)
        with pa.OSFile(str(tmp_path / "disk" / split / "data-00000-of-00001.arrow"), "wb") as sink:
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
    (tmp_path / "disk" / "dataset_dict.json").write_text('{"splits": ["train", "validation", "test"]}')
    for folder in ("hub", "disk"):
        data = load(tmp_path / folder)
        assert data.splits["train"].column("id").to_pylist() == ["hateful_memes-42953",
                                                                 "hateful_memes-23058", "hateful_memes-1235"]
        assert data.splits["validation"].column("answer").to_pylist() == ["hateful", "not-hateful"]
        assert decode_image(data.splits["train"].column("image")[0].as_py()).size == (448, 224)


def test_missing_root_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'hateful_memes' found no dataset under .*train\.jsonl.*Point "
                                        "data.root at the folder"):
        load(tmp_path)


def test_bad_rows(tmp_path: Path) -> None:
    write_release(tmp_path)
    train = tmp_path / "train.jsonl"
    train.write_text(train.read_text() + '{"id": 5, "img": \n')
    with pytest.raises(DataError, match=r"train\.jsonl line 4 is not valid JSON"):
        load(tmp_path)
    _write_jsonl(train, [TRAIN[0], {"id": 7, "label": 0, "text": "x"}])
    with pytest.raises(DataError, match=r"train\.jsonl line 2 has no field 'img'"):
        load(tmp_path)
    _write_jsonl(train, [{**TRAIN[0], "label": 2}])
    with pytest.raises(DataError, match=r"train\.jsonl line 1: label 2 is not 0 \(not-hateful\) or 1"):
        load(tmp_path)
    _write_jsonl(train, [{**TRAIN[0], "img": "img/99999.png"}])
    with pytest.raises(DataError, match=r"train\.jsonl line 1: image .*99999\.png not found"):
        load(tmp_path)
