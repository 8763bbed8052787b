"""The "digits" source: scikit-learn's 1,797 real 8x8 handwritten digits as a visual QA task.

The images ship inside scikit-learn, so this source works offline and is the default for tests and
small scenarios. Each 8x8 image (values 0..16) is scaled to 0..255 and upscaled to ``image_size`` with
bilinear resampling, since vision towers expect more than 8 pixels a side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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
    # Heavy import; only pay for it when the source is used.
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = []
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
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
