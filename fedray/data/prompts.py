"""Turning a sample into chat messages.

The model-specific chat template (applied by the processor) decides the exact tokens; this module decides
only the content. A missing modality is absent, never imputed: a row whose ``image`` is None gets no image
slot and a row whose ``text`` is None gets no context line. The question says which modalities the
answer is based on ("... based on the image and text?"), as in FedMLLM's prompts, unless the scenario
asks for the modality-agnostic prompt augmentation of FedMLLM: one wording whatever is present
("..., without considering the modality?"), used alike in training and evaluation.

Multiple-choice rows list their options lettered, "(A) not-hateful (B) hateful", and are trained to
answer "(B) hateful"; other rows answer with the ``answer`` string itself.
"""

from __future__ import annotations

import string
from typing import Any, Mapping

Message = dict[str, Any]

AGNOSTIC_PHRASE = "without considering the modality"


def choice_letter(index: int) -> str:
    """"A" for 0, "B" for 1, ...; options beyond Z are not supported by the lettered format."""
    if not 0 <= index < len(string.ascii_uppercase):
        raise ValueError(f"option index {index} outside A..Z")
    return string.ascii_uppercase[index]


def format_choice(index: int, text: str) -> str:
    """The lettered form of one option, also the training target: "(B) hateful"."""
    return f"({choice_letter(index)}) {text}"


def modality_phrase(row: Mapping[str, Any], agnostic: bool) -> str:
    """What the answer is based on, from the modalities the row holds ("" when it holds neither)."""
    if agnostic:
        return AGNOSTIC_PHRASE
    present = [name for name in ("image", "text") if row.get(name) is not None]
    return "based on the " + " and ".join(present) if present else ""


def qualified_question(question: str, phrase: str) -> str:
    """Insert ``phrase`` before the question's final punctuation: "Is it hateful based on the text?"."""
    if not phrase:
        return question
    body = question.rstrip()
    end = body[-1] if body and body[-1] in "?.!" else ""
    body = body[: len(body) - len(end)] if end else body
    joiner = ", " if phrase == AGNOSTIC_PHRASE else " "
    return f"{body}{joiner}{phrase}{end}"


def user_text(row: Mapping[str, Any], agnostic: bool = False) -> str:
    """Context text (if present), the qualified question, and the lettered options if any."""
    parts = []
    if row.get("text") is not None:
        parts.append(f"Text: {row['text']}")
    parts.append(qualified_question(str(row["question"]), modality_phrase(row, agnostic)))
    choices = row.get("choices")
    if choices:
        parts.append("Options: " + " ".join(format_choice(i, c) for i, c in enumerate(choices)))
    return "\n".join(parts)


def target_text(row: Mapping[str, Any]) -> str:
    """What the assistant is trained to say: the lettered option for choice rows, else the answer."""
    answer = str(row["answer"])
    choices = row.get("choices")
    if choices and answer in choices:
        return format_choice(list(choices).index(answer), answer)
    return answer


def user_message(row: Mapping[str, Any], agnostic: bool = False) -> Message:
    """The user turn: an image slot when the row has an image, then the text."""
    content: list[dict[str, Any]] = []
    if row.get("image") is not None:
        content.append({"type": "image"})
    content.append({"type": "text", "text": user_text(row, agnostic)})
    return {"role": "user", "content": content}


def assistant_message(answer: str) -> Message:
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}
