"""The "hf" source: datasets on disk, in data files or in the hub cache, mapped onto the sample schema."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import datasets
import pytest
from PIL import Image

from fedray.config import scenario_from_dict
from fedray.data.schema import validate_table
from fedray.data.sources import load_source, read_source
from fedray.errors import ConfigError, DataError


def png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 4), (shade, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def meme_splits(n: int = 8) -> datasets.DatasetDict:
    """A tiny classification dataset: an Image feature, a caption, a ClassLabel."""
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["benign", "hateful"])})
    def split(offset: int) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {"image": [{"bytes": png(offset + i), "path": None} for i in range(n)],
             "caption": [f"caption {offset + i}" for i in range(n)], "label": [i % 2 for i in range(n)]},
            features=features)
    return datasets.DatasetDict({"train": split(0), "test": split(100)})


MEME_OPTIONS = {"columns": {"text": "caption"}, "fixed_question": "Is it hateful?", "task": "memes",
                "name": "memes"}


def save_to_disk_copy(root: Path) -> Path:
    meme_splits().save_to_disk(str(root / "disk"))
    return root / "disk"


def parquet_copy(root: Path) -> Path:
    (root / "hub" / "data").mkdir(parents=True)
    for name, split in meme_splits().items():
        split.to_parquet(str(root / "hub" / "data" / f"{name}-00000-of-00001.parquet"))
    return root / "hub"


@pytest.mark.parametrize("make", [save_to_disk_copy, parquet_copy])
def test_a_copy_becomes_sample_tables(tmp_path, make):
    data = read_source("hf", MEME_OPTIONS, str(make(tmp_path)))
    assert data.label_names == ("benign", "hateful") and data.task == "memes"
    train = data.splits["train"]
    validate_table(train)
    first = train.slice(0, 1).to_pylist()[0]
    assert first | {"image": None} == {
        "id": "memes-train-0", "image": None, "text": "caption 0", "question": "Is it hateful?",
        "choices": None, "answer": "benign", "label": 0, "task": "memes", "source": "memes",
        "answer_type": None, "question_type": None}
    assert first["image"] == png(0)  # stored bytes, unchanged
    assert data.splits["test"].column("answer").to_pylist()[:2] == ["benign", "hateful"]
    assert set(data.notes["fingerprints"]) == {"train", "test"}


def test_save_to_disk_and_parquet_give_the_same_samples(tmp_path):
    a = read_source("hf", MEME_OPTIONS, str(save_to_disk_copy(tmp_path)))
    b = read_source("hf", MEME_OPTIONS, str(parquet_copy(tmp_path)))
    assert {k: v.to_pylist() for k, v in a.splits.items()} == {k: v.to_pylist() for k, v in b.splits.items()}


def test_multiple_choice_with_an_index_answer_and_split_names(tmp_path):
    rows = {"q": ["2+2?", "Sky?", "3+3?"], "options": [["3", "4"], ["blue", "green"], ["6", "7"]],
            "answer": [1, 0, 0], "uid": ["a", "b", "c"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                          "dev": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "mc"))
    options = {"columns": {"question": "q", "choices": "options", "id": "uid"}, "splits": {"test": "dev"}}
    data = read_source("hf", options, str(tmp_path / "mc"))
    assert set(data.splits) == {"train", "test"}  # dev named as the test split, so not the validation one
    rows_out = data.splits["train"].to_pylist()
    assert [(r["id"], r["answer"], r["label"], r["choices"]) for r in rows_out] == [
        ("hf-a", "4", 1, ["3", "4"]), ("hf-b", "blue", 0, ["blue", "green"]), ("hf-c", "6", 0, ["6", "7"])]


def test_json_csv_string_labels_and_open_answers(tmp_path):
    (tmp_path / "j").mkdir()
    lines = [{"question": f"q{i}", "label": ["cat", "dog"][i % 2]} for i in range(4)]
    (tmp_path / "j" / "train.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    data = read_source("hf", {}, str(tmp_path / "j"))
    assert data.label_names == ("cat", "dog")  # the label column's distinct strings
    assert data.splits["train"].column("answer").to_pylist() == ["cat", "dog", "cat", "dog"]
    assert data.splits["train"].column("label").to_pylist() == [0, 1, 0, 1]
    (tmp_path / "c.csv").write_text("question,answer\nwhat?,this\nwhy?,that\n")
    open_ended = read_source("hf", {"format": "csv"}, str(tmp_path / "c.csv"))
    assert open_ended.label_names == ()
    table = open_ended.splits["train"]
    assert table.column("answer_type").to_pylist() == ["open", "open"]  # scored by exact match


def test_imagefolder_labels_come_from_folder_names(tmp_path):
    for label in ("cat", "dog"):
        folder = tmp_path / "train" / label
        folder.mkdir(parents=True)
        for i in range(2):
            (folder / f"{i}.png").write_bytes(png(i))
    data = read_source("hf", {"fixed_question": "Which animal?"}, str(tmp_path))
    assert data.label_names == ("cat", "dog")
    rows = data.splits["train"].to_pylist()
    assert sorted(r["answer"] for r in rows) == ["cat", "cat", "dog", "dog"]
    assert all(r["image"] == png(0) or r["image"] == png(1) for r in rows)


def test_a_missing_column_names_the_columns_that_exist(tmp_path):
    root = str(save_to_disk_copy(tmp_path))
    with pytest.raises(DataError, match=r"data\.columns\.text: column 'tweet' is not in split 'train' .*"
                                        r"columns are \['image', 'caption', 'label'\]"):
        read_source("hf", {"columns": {"text": "tweet"}, "fixed_question": "?"}, root)
    with pytest.raises(DataError, match=r"no 'question' column .*data\.columns\.question.*fixed_question"):
        read_source("hf", {}, root)
    with pytest.raises(DataError, match=r"data\.splits\.test: split 'holdout' is not in .*splits are test, "
                                        r"train"):
        read_source("hf", {**MEME_OPTIONS, "splits": {"test": "holdout"}}, root)
    with pytest.raises(ConfigError, match=r"data\.columns\.captoin: unknown key .*did you mean 'caption'|"
                                          r"data\.columns\.captoin: unknown key"):
        read_source("hf", {"columns": {"captoin": "x"}}, root)


def test_a_replaced_copy_is_read_again(tmp_path):
    root = tmp_path / "j"
    root.mkdir()
    (root / "train.jsonl").write_text('{"question": "a", "answer": "x"}\n{"question": "b", "answer": "y"}\n')
    assert read_source("hf", {}, str(root)).splits["train"].num_rows == 2
    (root / "train.jsonl").write_text('{"question": "a", "answer": "x"}\n')
    os.utime(root / "train.jsonl", ns=(1, 1))  # a different mtime even on a coarse clock
    assert read_source("hf", {}, str(root)).splits["train"].num_rows == 1


def test_a_dataset_id_in_the_hub_cache_needs_no_root(tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "cache" / "datasets--some-org--memes"
    parquet = parquet_copy(tmp_path)
    (repo / "snapshots").mkdir(parents=True)
    parquet.rename(repo / "snapshots" / ("1" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    splits = load_source("hf", None, {**MEME_OPTIONS, "dataset": "some-org/memes"}, seed=0, test_fraction=0.2)
    assert splits.train.num_rows == 8 and splits.test.num_rows == 8
    import fedray.checks  # noqa: F401  (the root check knows the id needs no data.root)

    scenario_from_dict({"data": {"source": "hf", "dataset": "some-org/memes", **MEME_OPTIONS}})
    with pytest.raises(ConfigError, match=r"data\.root: data source 'hf' reads files; set data\.root"):
        scenario_from_dict({"data": {"source": "hf", **MEME_OPTIONS}})
    with pytest.raises(DataError, match=r"'other-org/none' is not in the local Hugging Face cache.*"
                                        r"hf download other-org/none --repo-type dataset"):
        read_source("hf", {"dataset": "other-org/none", **MEME_OPTIONS})


def test_a_hub_download_with_configs_reads_the_named_one(tmp_path):
    """A --local-dir download whose README declares configs (subsets): data.config picks one."""
    for config, answer in (("short", "yes"), ("long", "certainly")):
        (tmp_path / config).mkdir()
        (tmp_path / config / "train.jsonl").write_text(
            "\n".join(json.dumps({"question": f"q{i}", "answer": answer}) for i in range(3)))
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: short\n  data_files:\n  - split: train\n    path: short/train.jsonl\n"
        "- config_name: long\n  data_files:\n  - split: train\n    path: long/train.jsonl\n---\n")
    data = read_source("hf", {"config": "long"}, str(tmp_path))
    assert data.splits["train"].column("answer").to_pylist() == ["certainly"] * 3


def test_an_hf_copy_goes_through_the_scenario_pipeline(tmp_path):
    """Label partitions, per-sample modality masks and label names work as for any source."""
    import fedray.checks  # noqa: F401
    from fedray.data.federated import build_federated_data

    meme_splits(n=40).save_to_disk(str(tmp_path / "disk"))
    scenario = scenario_from_dict({
        "seed": 1, "data": {"source": "hf", "root": str(tmp_path / "disk"), **MEME_OPTIONS},
        "partition": {"name": "dirichlet", "num_clients": 4, "alpha": 0.5, "min_client_size": 4},
        "modality": {"name": "missing", "missing_rate": 0.5}})
    data = build_federated_data(scenario)
    assert data.label_names == {"memes": ("benign", "hateful")}
    assert sorted(i for spec in data.specs for i in spec.indices) == list(range(40))
    assert all(spec.masks is not None and len(spec.masks) == spec.num_samples for spec in data.specs)
    assert {m for spec in data.specs for m in spec.masks} > {3}  # some samples lose a modality
    assert data.primary_test.table.num_rows == 40
