"""The "medalpaca" source on a tiny flashcards JSON file and its Hugging Face parquet form."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedray.data.schema import SAMPLE_SCHEMA
from fedray.data.sources import read_source
from fedray.errors import DataError

FILE_NAME = "medical_meadow_wikidoc_medical_flashcards.json"
INSTRUCTION = "Answer this question truthfully"
CARDS = [
    {"instruction": INSTRUCTION, "input": "What is the function of insulin?",
     "output": "Insulin lowers blood glucose."},
    {"instruction": INSTRUCTION, "input": "", "output": "An answer without a question."},
    {"instruction": INSTRUCTION, "input": " What causes scurvy? ", "output": "Vitamin C deficiency. "},
    {"instruction": INSTRUCTION, "input": "A question without an answer?", "output": "   "},
    {"instruction": INSTRUCTION, "input": None, "output": "null input"},
    {"instruction": INSTRUCTION, "input": "Which nerve innervates the diaphragm?",
     "output": "The phrenic nerve."},
]


def load(root: Path, **options):
    return read_source("medalpaca", options, str(root))


def _check(data) -> None:
    assert set(data.splits) == {"train"} and data.task == "medical_text_qa" and data.label_names == ()
    assert data.notes == {"skipped_empty": 3}
    train = data.splits["train"]
    assert train.schema.equals(SAMPLE_SCHEMA)
    assert train.column("id").to_pylist() == ["medalpaca-0", "medalpaca-2", "medalpaca-5"]
    assert train.column("question").to_pylist() == ["What is the function of insulin?", "What causes scurvy?",
                                                    "Which nerve innervates the diaphragm?"]
    assert train.column("answer").to_pylist() == ["Insulin lowers blood glucose.", "Vitamin C deficiency.",
                                                  "The phrenic nerve."]
    for column in ("image", "text", "choices", "label", "answer_type"):
        assert train.column(column).null_count == 3
    assert set(train.column("source").to_pylist()) == {"medalpaca"}


def test_json_file_in_folder_or_given_directly(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text(json.dumps(CARDS))
    _check(load(tmp_path))
    _check(load(tmp_path / FILE_NAME))


def test_parquet_snapshot(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    table = pa.table({key: [card[key] for card in CARDS] for key in ("instruction", "input", "output")})
    pq.write_table(table, tmp_path / "data" / "train-00000-of-00001.parquet")
    _check(load(tmp_path))


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'medalpaca' found no dataset under .*flashcards\.json"):
        load(tmp_path)
    (tmp_path / FILE_NAME).write_text(json.dumps([CARDS[0], {"instruction": INSTRUCTION, "input": "q"}]))
    with pytest.raises(DataError, match=r"flashcards\.json record 2 has no field 'output'"):
        load(tmp_path)
    (tmp_path / FILE_NAME).write_text(json.dumps([CARDS[1]]))
    with pytest.raises(DataError, match="found no training samples"):
        load(tmp_path)
    (tmp_path / FILE_NAME).unlink()
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"input": ["q"], "output": ["a"]}),
                   tmp_path / "data" / "test-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"has no 'train' split \(found: test\)"):
        load(tmp_path)
