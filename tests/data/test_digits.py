"""The "digits" source and load_source: real samples, schema, seeded stratified split, caps, errors."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest

from fedray.config.schema import DataConfig
from fedray.data.schema import (
    SAMPLE_SCHEMA,
    decode_image,
    samples_to_table,
    validate_table,
)
from fedray.data.sources import DATA_SOURCES, SourceData, load_primary, read_source
from fedray.data.sources.digits import DIGIT_WORDS
from fedray.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def digits() -> tuple[pa.Table, tuple[str, ...], str]:
    data = read_source("digits")
    assert set(data.splits) == {"train"}, "digits ships no official split"
    return data.splits["train"], data.label_names, data.task


def test_all_samples_and_schema(digits) -> None:
    table, names, task = digits
    assert table.num_rows == 1797
    validate_table(table)
    assert table.schema.equals(SAMPLE_SCHEMA)
    assert names == DIGIT_WORDS and task == "digit_recognition"
    assert table.column("id")[5].as_py() == "digits-5"
    assert set(table.column("source").to_pylist()) == {"digits"}
    assert table.column("text").null_count == 1797 and table.column("choices").null_count == 1797


def test_image_decodes_to_rgb_of_image_size(digits) -> None:
    img = decode_image(digits[0].column("image")[0].as_py())
    assert img.mode == "RGB" and img.size == (32, 32)
    px = np.asarray(img)
    assert px.max() > 128 and px.min() < 32, "a digit stroke on a dark background"
    small = read_source("digits", {"image_size": 16}).splits["train"]
    assert decode_image(small.column("image")[-1].as_py()).size == (16, 16)


def test_answers_are_digit_words(digits) -> None:
    table = digits[0]
    answers, labels = table.column("answer").to_pylist(), table.column("label").to_pylist()
    assert set(answers) == set(DIGIT_WORDS)
    assert all(DIGIT_WORDS[lab] == ans for lab, ans in zip(labels, answers))
    assert set(table.column("question").to_pylist()) == {"Which digit is shown?"}


def test_split_sizes_and_stratification() -> None:
    splits = load_primary(DataConfig(test_fraction=0.2), seed=0)
    assert splits.test.num_rows == round(1797 * 0.2)
    assert splits.train.num_rows + splits.test.num_rows == 1797
    assert not set(splits.train.column("id").to_pylist()) & set(splits.test.column("id").to_pylist())
    train_c = Counter(splits.train.column("label").to_pylist())
    test_c = Counter(splits.test.column("label").to_pylist())
    for label in range(10):
        share = test_c[label] / (train_c[label] + test_c[label])
        assert abs(share - 0.2) < 0.01, (label, share)
    assert splits.label_names == DIGIT_WORDS and splits.task == "digit_recognition"


def test_split_deterministic_and_seeded() -> None:
    cfg = DataConfig(test_fraction=0.3)
    a, b, c = load_primary(cfg, seed=1), load_primary(cfg, seed=1), load_primary(cfg, seed=2)
    assert a.test.column("id").to_pylist() == b.test.column("id").to_pylist()
    assert a.test.equals(b.test) and a.train.equals(b.train)
    assert a.test.column("id").to_pylist() != c.test.column("id").to_pylist()


def test_caps_are_seeded_subsets() -> None:
    full = load_primary(DataConfig(), seed=0)
    capped = load_primary(DataConfig(max_train_samples=100, max_test_samples=50), seed=0)
    assert capped.train.num_rows == 100 and capped.test.num_rows == 50
    assert set(capped.train.column("id").to_pylist()) <= set(full.train.column("id").to_pylist())
    assert set(capped.test.column("id").to_pylist()) <= set(full.test.column("id").to_pylist())
    again = load_primary(DataConfig(max_train_samples=100, max_test_samples=50), seed=0)
    assert again.train.column("id").to_pylist() == capped.train.column("id").to_pylist()
    big = load_primary(DataConfig(max_train_samples=10_000), seed=0)
    assert big.train.num_rows == full.train.num_rows


def test_unknown_option_lists_accepted() -> None:
    with pytest.raises(ConfigError, match=r"data\.imagesize: unknown key.*known keys: image_size"):
        load_primary(DataConfig(options={"imagesize": 16}), seed=0)


def test_bad_option_value() -> None:
    with pytest.raises(ConfigError, match=r"data\.image_size: got 0, must be >= 1"):
        load_primary(DataConfig(options={"image_size": 0}), seed=0)
    with pytest.raises(DataError, match=r"data\.options\.root is not an option; set data\.root"):
        load_primary(DataConfig(options={"root": "/tmp"}), seed=0)


@dataclass(frozen=True)
class _RootedParams:
    reads_files: ClassVar[bool] = True
    n: int = 20


def _rooted_source(params: _RootedParams, root: str) -> SourceData:
    rows = [{"id": f"r{i}", "question": Path(root).name, "answer": "a", "label": i % 2,
             "task": "t", "source": "rooted"} for i in range(params.n)]
    return SourceData(splits={"train": samples_to_table(rows)}, label_names=("a", "b"), task="t")


def test_root_passed_and_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A throwaway source that needs files, registered only for this test.
    monkeypatch.setitem(DATA_SOURCES._entries, "rooted", _rooted_source)
    monkeypatch.setitem(DATA_SOURCES._params, "rooted", _RootedParams)
    splits = load_primary(DataConfig(source="rooted", root=str(tmp_path), test_fraction=0.5), seed=0)
    assert splits.train.column("question")[0].as_py() == tmp_path.name
    assert Counter(splits.test.column("label").to_pylist()) == {0: 5, 1: 5}
    missing = tmp_path / "absent"
    with pytest.raises(DataError, match=rf"data\.root '{missing}' does not exist"):
        load_primary(DataConfig(source="rooted", root=str(missing)), seed=0)
    with pytest.raises(DataError, match=r"set data\.root"):
        load_primary(DataConfig(source="rooted"), seed=0)


def test_schema_validation_errors() -> None:
    with pytest.raises(DataError, match=r"row 1 is missing required field 'answer'"):
        samples_to_table([
            {"id": "a", "question": "q", "answer": "x", "task": "t", "source": "s"},
            {"id": "b", "question": "q", "task": "t", "source": "s"},
        ])
    good = samples_to_table([{"id": "a", "question": "q", "answer": "x", "task": "t", "source": "s"}])
    with pytest.raises(DataError, match="no column 'task'"):
        validate_table(good.drop_columns(["task"]))
    mistyped = good.set_column(good.schema.get_field_index("label"), "label", pa.array(["1"]))
    with pytest.raises(DataError, match="column 'label' has type string, expected int64"):
        validate_table(mistyped)
