"""The Arrow schema of one sample, shared by every data source.

Loaders for real datasets produce rows of :data:`SAMPLE_SCHEMA`; nothing downstream knows which dataset a
row came from. Images travel as encoded bytes (PNG/JPEG) so tables stay compact and cheap to ship to actors.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
from PIL import Image

from fedray.errors import DataError

SAMPLE_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("image", pa.binary(), nullable=True),  # encoded PNG/JPEG bytes
        pa.field("text", pa.string(), nullable=True),  # context text
        pa.field("question", pa.string(), nullable=False),
        pa.field("choices", pa.list_(pa.string()), nullable=True),
        pa.field("answer", pa.string(), nullable=False),  # the training target
        pa.field("label", pa.int64(), nullable=True),
        pa.field("task", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        # Open-ended VQA metadata: "open"/"closed" and the dataset's question type, for per-type scores.
        pa.field("answer_type", pa.string(), nullable=True),
        pa.field("question_type", pa.string(), nullable=True),
    ]
)

#: Fields every row must carry with a non-null value.
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in SAMPLE_SCHEMA if not f.nullable)


def samples_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build a :data:`SAMPLE_SCHEMA` table from row dicts, checking required fields first.

    Nullable fields may be omitted. Raises :class:`DataError` naming the first row index and field that
    is missing, so a broken loader points at its own bad record rather than at an Arrow cast error.
    """
    for i, row in enumerate(rows):
        for name in REQUIRED_FIELDS:
            if row.get(name) is None:
                raise DataError(f"sample row {i} is missing required field {name!r} "
                                f"(required: {', '.join(REQUIRED_FIELDS)}); got keys {sorted(row)}")
    columns = {f.name: [row.get(f.name) for row in rows] for f in SAMPLE_SCHEMA}
    try:
        return pa.Table.from_pydict(columns, schema=SAMPLE_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"sample rows do not match the sample schema: {exc}") from exc


def validate_table(table: pa.Table) -> None:
    """Raise :class:`DataError` if ``table`` lacks a sample column or holds one of the wrong type.

    Nullability is not compared: tables built elsewhere (e.g. by ``pa.concat_tables`` or Parquet) may mark
    every field nullable, and what matters downstream is that the columns exist with the right types.
    """
    for expected in SAMPLE_SCHEMA:
        idx = table.schema.get_field_index(expected.name)
        if idx < 0:
            raise DataError(f"sample table has no column {expected.name!r} (expected {expected.type}); "
                            f"columns are {table.column_names}")
        got = table.schema.field(idx).type
        if not got.equals(expected.type):
            raise DataError(f"sample table column {expected.name!r} has type {got}, "
                            f"expected {expected.type}")


def decode_image(b: bytes) -> Image.Image:
    """Decode encoded image bytes into an RGB PIL image."""
    try:
        with Image.open(io.BytesIO(b)) as img:
            return img.convert("RGB")
    except Exception as exc:  # PIL raises several unrelated types for bad bytes
        raise DataError(f"cannot decode image bytes ({len(b)} bytes): {exc}") from exc


def encode_png(img: Image.Image) -> bytes:
    """Encode a PIL image as PNG bytes (lossless, so round trips are exact)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
