"""Dataset files that are broken or hostile end in one DataError naming file and row (issue 14)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from fedray.data.sources import read_source
from fedray.data.sources._files import MAX_IMAGE_PIXELS, build_tables, fit_image
from fedray.errors import DataError

ROWS = [{"id": i, "img": "img/0.png", "label": i % 2, "text": f"meme {i}"} for i in range(4)]


def png(size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size).save(buf, format="PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` × ``height`` pixels (what a decompression bomb does)."""
    data = bytearray(png((1, 1)))
    ihdr = bytearray(data[16:29])  # the IHDR chunk's 13 data bytes follow signature, length and type
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(data)


def release(root: Path, train: list[dict] | bytes = ROWS, test: list[dict] | None = None) -> Path:
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "img" / "0.png").write_bytes(png())
    body = train if isinstance(train, bytes) else "".join(json.dumps(r) + "\n" for r in train).encode()
    (root / "train.jsonl").write_bytes(body)
    tests = [{**r, "id": 100 + r["id"]} for r in ROWS] if test is None else test
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tests))
    return root


def error_of(root: Path) -> str:
    with pytest.raises(DataError) as info:
        read_source("hateful_memes", {}, str(root))
    return str(info.value)


def test_a_byte_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    good = json.dumps(ROWS[0]).encode() + b"\n"
    message = error_of(release(tmp_path, good + b'{"id": 9, "text": "\xff"}\n'))
    assert "train.jsonl line 2 is not UTF-8" in message and "0xff" in message


def test_a_binary_line(tmp_path: Path) -> None:
    assert "train.jsonl line 1 is not UTF-8" in error_of(release(tmp_path, bytes(range(128, 256))))


def test_a_split_file_that_is_a_directory(tmp_path: Path) -> None:
    release(tmp_path)
    (tmp_path / "train.jsonl").unlink()
    (tmp_path / "train.jsonl").mkdir()
    assert "train.jsonl is a directory" in error_of(tmp_path)


def test_a_text_field_holding_a_mapping_names_file_line_and_field(tmp_path: Path) -> None:
    rows = [dict(ROWS[0]), {**ROWS[1], "text": {"a": 1}}]
    message = error_of(release(tmp_path, rows))
    assert "train.jsonl line 2: field 'text' holds a dict" in message


@pytest.mark.parametrize("size", [(20000, 20000), (8000, 8000)])  # over PIL's own limit; over fedray's
def test_an_image_over_the_pixel_limit(tmp_path: Path, size: tuple[int, int]) -> None:
    release(tmp_path, [{**r, "img": "img/big.png"} for r in ROWS])
    (tmp_path / "img" / "big.png").write_bytes(png_claiming(*size))
    message = error_of(tmp_path)
    assert "train.jsonl line 1" in message and "big.png" in message
    assert size[0] * size[1] > MAX_IMAGE_PIXELS


def test_fit_image_reads_only_the_header_of_a_bomb() -> None:
    with pytest.raises(DataError, match="pixel limit|decompression bomb"):
        fit_image(png_claiming(60000, 60000), 448, "row 1")


@pytest.mark.parametrize("image", ["../../../etc/hostname", "/etc/hostname"])
def test_image_paths_outside_data_root_are_refused(tmp_path: Path, image: str) -> None:
    message = error_of(release(tmp_path / "hm", [{**r, "img": image} for r in ROWS]))
    assert "train.jsonl line 1" in message and ("outside data.root" in message or "absolute" in message)


def test_an_empty_test_file_is_not_replaced_by_a_carved_share(tmp_path: Path) -> None:
    message = error_of(release(tmp_path, test=[]))
    assert "test.jsonl holds no rows" in message and "carved from train" in message


def test_a_single_class_train_split(tmp_path: Path) -> None:
    message = error_of(release(tmp_path, [{**r, "label": 1} for r in ROWS]))
    assert "all 4 training samples have the answer 'hateful'" in message


def test_duplicate_ids_are_named(tmp_path: Path) -> None:
    rows = ROWS + [{**ROWS[1]}, {**ROWS[3]}]
    message = error_of(release(tmp_path, rows))
    assert "2 sample id(s) appear more than once in a split" in message
    assert "hateful_memes-1 (2× in train), hateful_memes-3 (2× in train)" in message


def test_an_id_may_repeat_across_splits(tmp_path: Path) -> None:
    """Many datasets number each split from 0; that is not a leak."""
    data = read_source("hateful_memes", {}, str(release(tmp_path, test=[dict(r) for r in ROWS])))
    assert data.splits["test"].column("id").to_pylist() == data.splits["train"].column("id").to_pylist()


def test_wrong_kinds_in_built_rows_name_split_and_id() -> None:
    row = {"id": "s-1", "question": "q", "answer": "a", "task": "t", "source": "s", "choices": ["a", 3]}
    with pytest.raises(DataError, match="train sample 1 \\(id 's-1'\\): field 'choices'"):
        build_tables({"train": [row]}, "s")
