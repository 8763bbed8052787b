"""The "glyphs" source: real DejaVu glyphs and Unicode names as an image+text script-identification task."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from fedray.data.schema import SAMPLE_SCHEMA, decode_image
from fedray.data.sources import glyphs as glyphs_module
from fedray.data.sources import load_source, read_source
from fedray.data.sources.glyphs import DEFAULT_SCRIPTS, QUESTION, SCRIPTS, covered_letters
from fedray.errors import ConfigError, DataError
from fedray.seeding import derive_rng

SMALL = {"scripts": ["Greek", "Hebrew"], "max_per_class": 24, "samples_per_char": 2}


def load(**options) -> pa.Table:
    return read_source("glyphs", options).splits["train"]


@pytest.fixture(scope="module")
def table() -> pa.Table:
    data = read_source("glyphs")
    assert set(data.splits) == {"train"} and data.task == "script_id" and data.label_names == DEFAULT_SCRIPTS
    return data.splits["train"]


def _codepoint(sample_id: str) -> int:
    match = re.fullmatch(r"glyphs-([0-9a-f]{4,6})-(\d+)", sample_id)
    assert match, sample_id
    return int(match[1], 16)


def test_schema_fields_and_balanced_classes(table: pa.Table) -> None:
    assert table.schema.equals(SAMPLE_SCHEMA)
    counts = Counter(table.column("label").to_pylist())
    assert sorted(counts) == list(range(len(DEFAULT_SCRIPTS)))
    assert set(counts.values()) == {400}, counts  # default max_per_class; every script reaches it
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == len(ids)
    for row in table.slice(0, 50).to_pylist() + table.slice(table.num_rows - 50).to_pylist():
        assert row["question"] == QUESTION and row["choices"] == list(DEFAULT_SCRIPTS)
        assert row["answer"] == DEFAULT_SCRIPTS[row["label"]]
        assert row["task"] == "script_id" and row["source"] == "glyphs"
        assert row["answer_type"] is None and row["question_type"] is None


def test_text_is_unicode_name_without_script_word(table: pa.Table) -> None:
    script_words = re.compile(r"\b(" + "|".join(s.lower() for s in SCRIPTS) + r")\b")
    for sample_id, text, answer in zip(table.column("id").to_pylist(), table.column("text").to_pylist(),
                                       table.column("answer").to_pylist()):
        char = chr(_codepoint(sample_id))
        assert unicodedata.category(char) in {"Lu", "Ll", "Lo"}
        assert unicodedata.name(char) == f"{answer.upper()} {text.upper()}"
        assert text == text.lower() and not script_words.search(text), text
    # Partly informative: some names occur in more than one script.
    scripts_by_text: dict[str, set[str]] = {}
    for letter in covered_letters():
        scripts_by_text.setdefault(letter.text, set()).add(SCRIPTS[letter.label])
    assert scripts_by_text["capital letter a"] == {"Latin", "Cyrillic"}
    assert scripts_by_text["small letter alpha"] == {"Latin", "Greek"}


def test_every_character_is_drawn_by_its_fonts() -> None:
    from matplotlib.ft2font import FT2Font

    charmaps = {path: FT2Font(path).get_charmap() for path in glyphs_module.font_paths()}
    letters = covered_letters()
    assert {SCRIPTS[letter.label] for letter in letters} == set(SCRIPTS)
    for letter in letters:
        assert letter.fonts and all(charmaps[path].get(letter.codepoint) for path in letter.fonts)
    hebrew = [letter for letter in letters if SCRIPTS[letter.label] == "Hebrew"]
    assert hebrew and all("Serif" not in path for letter in hebrew for path in letter.fonts)


def test_images_decode_to_image_size_with_ink_on_white(table: pa.Table) -> None:
    for raw in table.column("image").to_pylist()[::97]:
        img = decode_image(raw)
        assert img.mode == "RGB" and img.size == (32, 32)
        px = np.asarray(img.convert("L"))
        assert px.min() < 80 and px[0, 0] == 255 and px[-1, -1] == 255, "a dark glyph on white"
    small = load(image_size=24, **SMALL)
    assert decode_image(small.column("image")[0].as_py()).size == (24, 24)


def test_glyphs_differ_between_characters(table: pa.Table) -> None:
    letters = {letter.codepoint: letter for letter in covered_letters()}
    alef, bet = letters[0x05D0], letters[0x05D1]
    assert alef.fonts == bet.fonts  # so one generator picks the same font, size and offset for both

    def render(letter) -> np.ndarray:
        img = glyphs_module._render(letter, 32, derive_rng(0, "test"))
        return np.asarray(img.convert("L"), dtype=np.int16)

    assert np.array_equal(render(alef), render(alef))
    assert np.abs(render(alef) - render(bet)).mean() > 5, "different letters, different glyphs"
    images = table.column("image").to_pylist()
    assert len(set(images)) > 0.95 * len(images), "renderings are nearly all distinct"


def test_deterministic_and_seeded() -> None:
    first = load(**SMALL)
    glyphs_module._build_table.cache_clear()  # rebuild from scratch rather than return the cached table
    again = load(**SMALL)
    assert first is not again and first.equals(again)
    other = load(seed=1, **SMALL)
    assert other.num_rows == first.num_rows
    assert other.column("image").to_pylist() != first.column("image").to_pylist()
    assert Counter(other.column("label").to_pylist()) == Counter(first.column("label").to_pylist())


def test_balancing_follows_the_smallest_script() -> None:
    table = load(scripts=["Latin", "Hebrew"], samples_per_char=1, max_per_class=500)
    hebrew = sum(SCRIPTS[letter.label] == "Hebrew" for letter in covered_letters())
    assert Counter(table.column("answer").to_pylist()) == {"Latin": hebrew, "Hebrew": hebrew}
    assert table.column("choices")[0].as_py() == ["Latin", "Hebrew"]
    assert set(table.column("label").to_pylist()) == {0, 1}
    # Distinct characters come before repeated renderings of one character.
    capped = load(scripts=["Latin", "Greek"], samples_per_char=3, max_per_class=100)
    assert all(sample_id.endswith("-0") for sample_id in capped.column("id").to_pylist())


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match=r"data\.image_size: got 4, must be >= 8"):
        load(image_size=4)
    with pytest.raises(ConfigError, match=r"data\.samples_per_char: got 0, must be >= 1"):
        load(samples_per_char=0)
    with pytest.raises(ConfigError, match=r"data\.scripts\[1\]: got 'Runic'"):
        load(scripts=["Latin", "Runic"])
    with pytest.raises(ConfigError, match="at least two"):
        load(scripts=["Latin"])


def test_missing_font_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(glyphs_module, "font_dir", lambda: str(tmp_path))  # even with the table cached
    with pytest.raises(DataError, match=r"font file .*DejaVuSans\.ttf is missing"):
        load(**SMALL)


def test_through_load_source_split() -> None:
    splits = load_source("glyphs", None, SMALL, seed=0, test_fraction=0.25)
    assert splits.label_names == ("Greek", "Hebrew") and splits.task == "script_id"
    assert Counter(splits.test.column("label").to_pylist()) == {0: 6, 1: 6}
    assert splits.train.num_rows == 36
