"""The ``fedmllm`` prompt style: the FedMLLM reference's user and assistant turns, character for character.

A multiple-choice row (Hateful Memes, CrisisMMD, any row with ``choices``) gets, one part per line::

    Select the best answer to the following multiple-choice question based on the text and image.
    <the context text, bare, when the row holds text>
    Is the content hateful based on the text and image?
    Options:
    (A) not-hateful
    (B) hateful
    <the closing line>

after the image slot when the row holds an image. The closing line is :data:`ENDING`, "Answer with the
option's letter from the given choices directly and only give the best option. The best answer is: " (one
line, ending with a space). The instruction and the question both say what the answer is based on:
" based on the text and image" when the row holds both, " based on the text" or " based on the image"
when it holds one, nothing when it holds neither. The question names the two modalities in its dataset's
order ("image and text" for CrisisMMD, whose instruction still says "text and image"; "text and image"
everywhere else). With the augmentation (``agnostic``) both
sentences say ", without considering the modality" instead, whatever the row holds.

The assistant's target is the lettered option, "(B) hateful".

An open-ended row (no ``choices``: VQA-RAD, SLAKE, MedAlpaca) is its bare question, after the image slot
when it has one, and its target the bare answer; there is no template, as in the reference's medical
files. Context text, which the medical sets do not have, would come on its own line before the question.
The reference has no augmented medical prompt; fedray's puts the augmentation words in the question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from fedray.data.prompts.base import (
    AGNOSTIC_WORDS,
    PromptStyle,
    format_choice,
    has_image,
    has_text,
    insert_before_end,
    register_style,
)

INSTRUCTION = "Select the best answer to the following multiple-choice question."
ENDING = ("Answer with the option's letter from the given choices directly and only give the best option. "
          "The best answer is: ")
OPTIONS_HEADER = "Options:"
#: How the question of each source names image and text together (the instruction always says
#: "text and image"); sources not listed use :data:`DEFAULT_BOTH`.
QUESTION_BOTH: dict[str, str] = {"crisismmd": "image and text"}
DEFAULT_BOTH = "text and image"


def modality_words(row: Mapping[str, Any], agnostic: bool, both: str) -> str:
    """The words put before a sentence's end: what the answer is based on, or the augmentation's."""
    if agnostic:
        return ", " + AGNOSTIC_WORDS
    image, text = has_image(row), has_text(row)
    if image and text:
        return " based on the " + both
    if image or text:
        return " based on the " + ("image" if image else "text")
    return ""


def options_block(choices: Any, header: str = OPTIONS_HEADER, separator: str = "\n") -> str:
    """The header, then each lettered option, ``separator`` before each: "Options:\\n(A) x\\n(B) y"."""
    return header + "".join(separator + format_choice(i, c) for i, c in enumerate(choices))


@dataclass(frozen=True)
class FedMLLMParams:
    """The ``fedmllm`` style takes no parameters: it is the reference's wording."""


@register_style("fedmllm", params=FedMLLMParams)
class FedMLLMStyle(PromptStyle):
    """The FedMLLM reference's prompts (see the module docstring)."""

    def user_text(self, row: Mapping[str, Any]) -> str:
        question = str(row["question"])
        if not row.get("choices"):
            if self.agnostic:
                question = insert_before_end(question, ", " + AGNOSTIC_WORDS)
            return "\n".join(([str(row["text"])] if has_text(row) else []) + [question])
        both = QUESTION_BOTH.get(str(row.get("source")), DEFAULT_BOTH)
        lines = [insert_before_end(INSTRUCTION, modality_words(row, self.agnostic, DEFAULT_BOTH))]
        if has_text(row):
            lines.append(str(row["text"]))
        lines.append(insert_before_end(question, modality_words(row, self.agnostic, both)))
        lines += [options_block(row["choices"]), ENDING]
        return "\n".join(lines)
