"""The "glyphs" source: which writing system a letter belongs to, from its picture and its name.

Real material only, all of it offline: the DejaVu typefaces that ship inside matplotlib and the character
names of the Unicode Character Database in Python's :mod:`unicodedata`. A sample is one letter of one
script that the fonts really contain:

- ``image``: the glyph rendered black on white in a seeded choice among the fonts that cover it, at a
  seeded size and offset, as an ``image_size``² RGB PNG;
- ``text``: the letter's Unicode name with the script word removed, lower-cased ("LATIN CAPITAL LETTER A
  WITH ACUTE" → "capital letter a with acute").

Both modalities carry label information and neither carries all of it: many names say which script they
come from ("letter alef", "small letter alpha with psili") but some occur in several ("small letter
alpha" is Latin and Greek; Georgian and Hebrew letters alike are named "letter <name>"), while some
glyphs are distinctive (Hebrew, Georgian) and others are look-alikes (Latin A and Greek Alpha).

Six scripts are available (:data:`SCRIPTS`); the default task uses four (:data:`DEFAULT_SCRIPTS`). With
all six, ``benchmarks/modality_value.py`` found that the tiny offline VLM learns nothing from the image
within its step budget (image-only accuracy at chance, image+text below text-only), and its text-only
answers mistook most Latin letters for Cyrillic (look-alike glyphs, shared names such as "capital letter
a") and most Georgian letters for Armenian (names of the same pattern). With Latin, Greek, Georgian and
Hebrew, image+text beats either modality alone; the benchmark prints the numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import unicodedata
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw, ImageFont

from fedray.config.schema import spec
from fedray.data.schema import encode_png, samples_to_table
from fedray.data.sources.base import DATA_SOURCES, SourceData
from fedray.data.sources.glyph_cache import cached_table, table_key, table_path
from fedray.errors import DataError
from fedray.seeding import derive_rng

Script = Literal["Latin", "Greek", "Cyrillic", "Armenian", "Georgian", "Hebrew"]
#: Every script the source can draw, in label order; ``scripts`` picks a subset (labels follow this order).
SCRIPTS: tuple[str, ...] = get_args(Script)
#: The default task (see the module docstring for why not all six).
DEFAULT_SCRIPTS: tuple[str, ...] = ("Latin", "Greek", "Georgian", "Hebrew")
QUESTION = "Which writing system is this character from?"
TASK = "script_id"
SOURCE = "glyphs"

#: The DejaVu faces used, as file names under :func:`font_dir` (``matplotlib.get_data_path()/fonts/ttf``).
FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
)
_LETTER_CATEGORIES = frozenset({"Lu", "Ll", "Lo"})
# Font size (em) as a share of the image side, the largest ink extent allowed (wider glyphs are drawn
# smaller so they fit), and the largest offset of the ink box from the centre, in the same unit. Large,
# nearly centred glyphs matter: with smaller or more scattered ones the tiny VLM's frozen, randomly
# initialised vision tower passes too little shape signal to learn from in a few hundred steps.
_SIZE_RANGE = (0.8, 0.95)
_MAX_EXTENT = 0.94
_MAX_SHIFT = 0.03


@dataclass(frozen=True)
class Letter:
    """One covered character: its code point, script index, name text and the fonts that draw it."""

    codepoint: int
    label: int
    text: str
    fonts: tuple[str, ...]  # full paths


@dataclass(frozen=True)
class GlyphsParams:
    image_size: int = spec(32, ge=8, help="side of the rendered RGB image, in pixels")
    samples_per_char: int = spec(6, ge=1, help="renderings per character at most")
    max_per_class: int = spec(400, ge=1, help="samples per script at most")
    scripts: tuple[Script, ...] = spec(DEFAULT_SCRIPTS, help="the scripts to tell apart (two or more); "
                                                             "labels follow the order of SCRIPTS")
    seed: int = spec(0, ge=0, help="seed of every rendering choice")

    def problems(self) -> list[str]:
        if len(set(self.scripts)) < 2:
            return [f"scripts must name at least two of: {', '.join(SCRIPTS)}; got {list(self.scripts)!r}"]
        return []


@DATA_SOURCES.register("glyphs", params=GlyphsParams)
def load_glyphs_source(params: GlyphsParams) -> SourceData:
    """Rendered letters of ``scripts`` (default :data:`DEFAULT_SCRIPTS`), balanced across scripts.

    Each character yields up to ``samples_per_char`` renderings; every script keeps the same number of
    samples, ``min(max_per_class, smallest script's renderings)``, preferring distinct characters over
    repeated ones. Every random choice derives from ``seed``; the same options give the identical table.
    The table is rendered once and then read from the cache (:mod:`fedray.data.sources.glyph_cache`).
    """
    chosen = tuple(s for s in SCRIPTS if s in params.scripts)
    options = {**dataclasses.asdict(params), "scripts": chosen}
    # font_paths() fails early, naming a missing file, even when the table is cached.
    path = table_path(table_key(options, font_paths()))
    table = _build_table(path, params.image_size, params.samples_per_char, params.max_per_class, chosen,
                         params.seed)
    return SourceData(splits={"train": table}, label_names=chosen, task=TASK,
                      notes={"per_class": table.num_rows // len(chosen)})


def font_dir() -> str:
    """matplotlib's DejaVu font directory, found without importing matplotlib (a cached run never does)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        # a dependency of fedray, but say what to do if it is gone
        raise DataError("the glyphs source renders matplotlib's DejaVu fonts; install matplotlib "
                        "(pip install matplotlib)")
    return os.path.join(list(spec.submodule_search_locations)[0], "mpl-data", "fonts", "ttf")


def font_paths() -> tuple[str, ...]:
    """Full paths of :data:`FONT_FILES`; :class:`DataError` naming the first one that is missing."""
    directory = font_dir()
    paths = tuple(os.path.join(directory, name) for name in FONT_FILES)
    for path in paths:
        if not os.path.isfile(path):
            raise DataError(f"font file {path} is missing; the glyphs source needs matplotlib's DejaVu "
                            f"fonts ({', '.join(FONT_FILES)}); reinstall matplotlib")
    return paths


@functools.lru_cache(maxsize=1)
def covered_letters() -> tuple[Letter, ...]:
    """Every letter (Lu/Ll/Lo) of :data:`SCRIPTS` that at least one DejaVu face draws, by code point."""
    from matplotlib.ft2font import FT2Font

    paths = font_paths()
    charmaps = {path: {cp for cp, glyph in FT2Font(path).get_charmap().items() if glyph} for path in paths}
    prefixes = [(i, script.upper() + " ") for i, script in enumerate(SCRIPTS)]
    letters = []
    for cp in sorted(set().union(*charmaps.values())):
        char = chr(cp)
        if unicodedata.category(char) not in _LETTER_CATEGORIES:
            continue
        name = unicodedata.name(char, "")
        for label, prefix in prefixes:
            fonts = tuple(p for p in paths if cp in charmaps[p])
            if name.startswith(prefix) and fonts:
                letters.append(Letter(cp, label, name[len(prefix):].lower(), fonts))
    return tuple(letters)


# Arrow tables are immutable, so repeated loads in one process (tests, CLI, tune trials) can share one.
@functools.lru_cache(maxsize=4)
def _build_table(path: os.PathLike, image_size: int, samples_per_char: int, max_per_class: int,
                 scripts: tuple[str, ...], seed: int) -> pa.Table:
    """The table cached at ``path`` (its key covers these arguments), rendered there first if missing."""
    return cached_table(path, lambda: _render_table(image_size, samples_per_char, max_per_class, scripts,
                                                    seed))


def _render_table(image_size: int, samples_per_char: int, max_per_class: int,
                  scripts: tuple[str, ...], seed: int) -> pa.Table:
    """Every sample rendered from the fonts (seconds at 10,000 rows; imports matplotlib)."""
    by_script = {s: [ltr for ltr in covered_letters() if SCRIPTS[ltr.label] == s] for s in scripts}
    per_class = min(max_per_class, *(len(v) * samples_per_char for v in by_script.values()))
    rows = []
    for label, script in enumerate(scripts):
        for letter, k in _select(by_script[script], samples_per_char, per_class,
                                 derive_rng(seed, "glyphs", "select", script)):
            rng = derive_rng(seed, "glyphs", "render", letter.codepoint, k)
            rows.append(_row(letter, k, label, scripts, _render(letter, image_size, rng)))
    _font.cache_clear()  # the open faces (≈ 24 MiB at 10,240 rows) would stay in the driver for the run
    return samples_to_table(rows)


def _select(letters: list[Letter], samples_per_char: int, count: int,
            rng: np.random.Generator) -> list[tuple[Letter, int]]:
    """``count`` (letter, k) pairs: rendering k=0 of every letter in seeded order, then k=1, and so on."""
    order = rng.permutation(len(letters))
    pairs = [(letters[i], k) for k in range(samples_per_char) for i in order]
    return sorted(pairs[:count], key=lambda pair: (pair[0].codepoint, pair[1]))


@functools.lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _render(letter: Letter, image_size: int, rng: np.random.Generator) -> Image.Image:
    """The letter black on white in a seeded font, size and offset; the glyph's ink box is centred."""
    char = chr(letter.codepoint)
    path = letter.fonts[int(rng.integers(len(letter.fonts)))]
    size = max(4, round(image_size * rng.uniform(*_SIZE_RANGE)))
    dx, dy = np.rint(rng.uniform(-_MAX_SHIFT, _MAX_SHIFT, size=2) * image_size)
    font = _font(path, size)
    left, top, right, bottom = font.getbbox(char)
    extent = max(right - left, bottom - top)
    if extent > _MAX_EXTENT * image_size:
        font = _font(path, max(4, int(size * _MAX_EXTENT * image_size / extent)))
        left, top, right, bottom = font.getbbox(char)
    x = (image_size - (right - left)) / 2 - left + dx
    y = (image_size - (bottom - top)) / 2 - top + dy
    img = Image.new("L", (image_size, image_size), 255)
    ImageDraw.Draw(img).text((x, y), char, font=font, fill=0)
    return img.convert("RGB")


def _row(letter: Letter, k: int, label: int, scripts: tuple[str, ...], img: Image.Image) -> dict:
    return {
        "id": f"glyphs-{letter.codepoint:04x}-{k}",
        "image": encode_png(img),
        "text": letter.text,
        "question": QUESTION,
        "choices": list(scripts),
        "answer": scripts[label],
        "label": label,
        "task": TASK,
        "source": SOURCE,
    }
