"""The shared readers behind the dataset sources: records, errors that point at rows, images, HF layouts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fedray.data.schema import decode_image
from fedray.data.sources import DATA_SOURCES
from fedray.data.sources._files import (
    ImageReader,
    Record,
    build_tables,
    detect_layout,
    fit_image,
    hf_records,
    hf_split_files,
    read_json_records,
    read_jsonl,
    read_records,
    read_tsv,
    standard_splits,
)
from fedray.errors import DataError


def _image(size: tuple[int, int], fmt: str = "PNG", color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def _write_arrow_stream(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


# --- records ------------------------------------------------------------------------------------------

def test_jsonl_records_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"id": 1, "text": "a"}\n\n{"id": 2, "text": "b"}\n')
    records = read_jsonl(path)
    assert [r.data["id"] for r in records] == [1, 2]
    assert records[1].where == f"{path} line 3"


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "dev.jsonl"
    path.write_text('{"id": 1}\n{"id": 2,\n')
    with pytest.raises(DataError, match=r"dev\.jsonl line 2 is not valid JSON"):
        read_jsonl(path)
    path.write_text('{"id": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"dev\.jsonl line 2 is a JSON list, expected an object"):
        read_jsonl(path)


def test_json_list_records_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"q": "x"}, {"q": "y"}]))
    assert [r.where for r in read_json_records(path)] == [f"{path} record 1", f"{path} record 2"]
    path.write_text('{"q": "x"}')
    with pytest.raises(DataError, match="holds a JSON dict, expected a list of objects"):
        read_json_records(path)
    path.write_text('[{"q": "x"},\n {"q": }]')
    with pytest.raises(DataError, match=r"data\.json is not valid JSON \(line 2"):
        read_json_records(path)


def test_tsv_records_and_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "split.tsv"
    path.write_text('a\tb\n1\t"quoted" text\n\n2\tx\n')
    records = read_tsv(path)
    assert [r.data for r in records] == [{"a": "1", "b": '"quoted" text'}, {"a": "2", "b": "x"}]
    assert records[1].where == f"{path} line 4"
    path.write_text("a\tb\n1\t2\n3\n")
    with pytest.raises(DataError, match=r"split\.tsv line 3 has 1 tab-separated fields, expected 2 \(a, b\)"):
        read_tsv(path)


def test_record_require_names_file_row_and_field() -> None:
    rec = Record({"id": 3, "text": None}, "/d/train.jsonl line 7")
    assert rec.require("id") == 3 and rec.get("text", "none") == "none" and rec.get("missing") is None
    with pytest.raises(DataError, match=r"/d/train\.jsonl line 7 has no field 'label'.*\['id', 'text'\]"):
        rec.require("label")


def test_read_records_dispatches_on_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n')
    (tmp_path / "b.json").write_text('[{"x": 2}]')
    assert [r.data["x"] for r in read_records([tmp_path / "a.jsonl", tmp_path / "b.json"])] == [1, 2]
    with pytest.raises(DataError, match=r"cannot read .*c\.csv: expected one of"):
        read_records([tmp_path / "c.csv"])


# --- images -------------------------------------------------------------------------------------------

def test_fit_image_keeps_small_images_byte_for_byte() -> None:
    png = _image((40, 20))
    assert fit_image(png, 40, "x") is png
    assert fit_image(png, None, "x") is png


def test_fit_image_downscales_keeping_aspect_and_format() -> None:
    small = fit_image(_image((100, 50), "JPEG"), 40, "x")
    with Image.open(io.BytesIO(small)) as img:
        assert img.format == "JPEG" and img.size == (40, 20)
    small = fit_image(_image((30, 90)), 45, "x")
    with Image.open(io.BytesIO(small)) as img:
        assert img.format == "PNG" and img.size == (15, 45)


def test_fit_image_rejects_bad_bytes() -> None:
    with pytest.raises(DataError, match=r"row 4: cannot read image \(9 bytes\)"):
        fit_image(b"not image", 10, "row 4")


def test_image_reader_cells_and_cache(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    png = _image((8, 6))
    (tmp_path / "img" / "a.png").write_bytes(png)
    reader = ImageReader(None)
    assert reader.cell({"bytes": png, "path": "ignored.png"}, tmp_path, "r") == png
    assert reader.cell({"bytes": None, "path": "img/a.png"}, tmp_path, "r") == png
    assert reader.cell("img/a.png", tmp_path, "r") == png
    assert reader.cell(png, tmp_path, "r") == png
    assert reader.cell(None, tmp_path, "r") is None
    (tmp_path / "img" / "a.png").unlink()
    assert reader.file(tmp_path / "img" / "a.png", "r") == png, "served from the cache"
    with pytest.raises(DataError, match=r"train\.jsonl line 2: image .*b\.png not found"):
        reader.file(tmp_path / "img" / "b.png", "train.jsonl line 2")


IMAGE_SOURCES = ("crisismmd", "hateful_memes", "scienceqa", "slake", "vqa_rad")


@pytest.mark.parametrize("source", IMAGE_SOURCES)
@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_max_image_side_must_be_positive_int(source: str, bad: object) -> None:
    instance, problems = DATA_SOURCES.parse(source, {"max_image_side": bad}, "data")
    assert instance is None and len(problems) == 1 and problems[0].startswith("data.max_image_side: got")
    assert DATA_SOURCES.parse(source, {"max_image_side": None}, "data")[0].max_image_side is None


# --- Hugging Face layouts -----------------------------------------------------------------------------

def _hub_snapshot(root: Path, folder: str = "data") -> None:
    png = _image((4, 4))
    (root / folder).mkdir(parents=True, exist_ok=True)
    for split, shards in (("train", 2), ("validation", 1), ("test", 1)):
        for k in range(shards):
            table = pa.table({"q": [f"{split}{k}"], "image": pa.array([{"bytes": png, "path": "p.png"}],
                                                                     IMAGE_TYPE)})
            pq.write_table(table, root / folder / f"{split}-{k:05d}-of-{shards:05d}.parquet")


def test_parquet_snapshot_splits_and_rows(tmp_path: Path) -> None:
    _hub_snapshot(tmp_path)
    files = hf_split_files(tmp_path, "parquet")
    assert {k: [p.name for p in v] for k, v in files.items()} == {
        "test": ["test-00000-of-00001.parquet"],
        "train": ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"],
        "validation": ["validation-00000-of-00001.parquet"]}
    records = hf_records(tmp_path, "parquet")
    assert [r.data["q"] for r in records["train"]] == ["train0", "train1"]
    assert records["test"][0].where.endswith("test-00000-of-00001.parquet row 1")
    assert decode_image(records["validation"][0].data["image"]["bytes"]).size == (4, 4)


def test_parquet_config_folders_and_numbered_shards(tmp_path: Path) -> None:
    _hub_snapshot(tmp_path, "default")
    assert set(hf_split_files(tmp_path, "parquet")) == {"train", "validation", "test"}
    _hub_snapshot(tmp_path, "other")
    with pytest.raises(DataError, match="several configs of one dataset; point data.root at one of them"):
        hf_split_files(tmp_path, "parquet")
    numbered = tmp_path / "converted"
    (numbered / "cfg" / "train").mkdir(parents=True)
    pq.write_table(pa.table({"q": ["n"]}), numbered / "cfg" / "train" / "0000.parquet")
    assert [r.data["q"] for r in hf_records(numbered, "parquet")["train"]] == ["n"]


def test_save_to_disk_layout_stream_and_file(tmp_path: Path) -> None:
    (tmp_path / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "dev", "extra"]}))
    _write_arrow_stream(tmp_path / "train" / "data-00000-of-00001.arrow", pa.table({"q": ["a", "b"]}))
    (tmp_path / "train" / "state.json").write_text(
        json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (tmp_path / "dev").mkdir()
    with pa.OSFile(str(tmp_path / "dev" / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_file(sink, pa.schema([("q", pa.string())])) as writer:  # IPC file format
            writer.write_table(pa.table({"q": ["c"]}))
    _write_arrow_stream(tmp_path / "extra" / "data-00000-of-00001.arrow", pa.table({"q": ["z"]}))
    records = hf_records(tmp_path, "arrow")
    assert {k: [r.data["q"] for r in v] for k, v in records.items()} == {"train": ["a", "b"],
                                                                        "validation": ["c"]}


def test_single_dataset_save_to_disk_is_train(tmp_path: Path) -> None:
    _write_arrow_stream(tmp_path / "data-00000-of-00001.arrow", pa.table({"q": ["a"]}))
    (tmp_path / "state.json").write_text("{}")
    assert detect_layout(tmp_path, ("train.jsonl",), "auto", "demo") == "arrow"
    assert [r.data["q"] for r in hf_records(tmp_path, "arrow")["train"]] == ["a"]


def test_real_datasets_library_output_is_read(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    png = _image((6, 3))
    features = datasets.Features({"image": datasets.Image(), "q": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"image": [{"bytes": png, "path": None}], "q": ["x"]}, features=features)
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "disk"))
    (tmp_path / "hub" / "data").mkdir(parents=True)
    ds.to_parquet(str(tmp_path / "hub" / "data" / "train-00000-of-00001.parquet"))
    for folder, layout in (("disk", "arrow"), ("hub", "parquet")):
        assert detect_layout(tmp_path / folder, ("x.json",), "auto", "demo") == layout
        records = hf_records(tmp_path / folder, layout)
        assert records["train"][0].data["q"] == "x"
        image = ImageReader(None).cell(records["train"][0].data["image"], tmp_path, "r")
        assert image is not None and decode_image(image).size == (6, 3)


def test_detect_layout_order_and_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"found no dataset under .*train\.jsonl .*parquet.*dataset_dict"):
        detect_layout(tmp_path, ("train.jsonl",), "auto", "demo")
    _hub_snapshot(tmp_path)
    assert detect_layout(tmp_path, ("train.jsonl",), "auto", "demo") == "parquet"
    (tmp_path / "train.jsonl").write_text("")
    assert detect_layout(tmp_path, ("train.jsonl",), "auto", "demo") == "original"
    assert detect_layout(tmp_path, ("train.jsonl",), "parquet", "demo") == "parquet"
    _, problems = DATA_SOURCES.parse("hateful_memes", {"layout": "hub"}, "data")
    assert problems == ["data.layout: got 'hub' (str), expected one of 'auto', 'original', 'parquet', "
                        "'arrow'"]
    with pytest.raises(DataError, match="neither dataset_dict.json nor state.json"):
        hf_split_files(tmp_path, "arrow")


def test_standard_split_names() -> None:
    assert standard_splits({"train": 1, "dev": 2, "test": 3, "minival": 4}) == {
        "train": 1, "validation": 2, "test": 3}
    assert standard_splits({"val": 2}) == {"validation": 2}
    with pytest.raises(DataError, match=r"\['dev', 'val'\] all map to fedray's 'validation' split"):
        standard_splits({"val": 1, "dev": 2})


def test_build_tables_drops_empty_eval_splits_and_needs_train() -> None:
    row = {"id": "s-1", "question": "q", "answer": "a", "task": "t", "source": "s"}
    tables = build_tables({"train": [row], "validation": []}, "s")
    assert list(tables) == ["train"] and tables["train"].num_rows == 1
    with pytest.raises(DataError, match="data source 's' found no training samples"):
        build_tables({"train": [], "test": [row]}, "s")
