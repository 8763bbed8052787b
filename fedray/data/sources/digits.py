"""The "digits" source: scikit-learn's 1,797 real 8x8 handwritten digits as a visual QA task.

The images ship inside scikit-learn, so this source works offline and is the default for tests and
small scenarios. Each 8x8 image (values 0..16) is scaled to 0..255 and upscaled to ``image_size`` with
bilinear resampling, since vision towers expect more than 8 pixels a side.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from fedray.config.schema import spec
from fedray.data.schema import encode_png, samples_to_table
from fedray.data.sources.base import DATA_SOURCES, SourceData

DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four",
                                "five", "six", "seven", "eight", "nine")
QUESTION = "Which digit is shown?"
TASK = "digit_recognition"


@dataclass(frozen=True)
class DigitsParams:
    image_size: int = spec(32, ge=1, help="side of the upscaled RGB image, in pixels")


@DATA_SOURCES.register("digits", params=DigitsParams)
def load_digits_source(params: DigitsParams) -> SourceData:
    """All 1,797 digits as samples: an ``image_size``² RGB PNG, the question, the digit's English word."""
    return SourceData(splits={"train": _build_table(params.image_size)}, label_names=DIGIT_WORDS, task=TASK)


# Arrow tables are immutable, so repeated loads in one process (tests, CLI, tune trials) can share one.
@functools.lru_cache(maxsize=4)
def _build_table(image_size: int) -> pa.Table:
    images, targets = _digits_arrays()
    rows = []
    for i, (pixels, label) in enumerate(zip(images, targets)):
        # 0..16 → 0..255 grey; white digit on black, as in the original scans' inverted form.
        grey = np.clip(np.rint(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        img = Image.fromarray(grey).resize((image_size, image_size), Image.Resampling.BILINEAR)
        rows.append({
            "id": f"digits-{i}",
            "image": encode_png(img.convert("RGB")),
            "text": None,
            "question": QUESTION,
            "choices": None,
            "answer": DIGIT_WORDS[int(label)],
            "label": int(label),
            "task": TASK,
            "source": "digits",
        })
    return samples_to_table(rows)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64, targets (1797,) int): scikit-learn's digits.csv.gz read directly,
    since importing scikit-learn (with scipy and pandas) cost the driver about 100 MiB and a second;
    ``load_digits`` reads the same file the same way, and is the fallback should the file move."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.exists():
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    with gzip.open(path, "rt") as rows:
        data = np.loadtxt(rows, delimiter=",")  # (1797, 65): 64 pixels, then the digit
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
