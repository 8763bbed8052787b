"""The ``fedray`` prompt style (the default): fedray's own wording, unchanged since the first release.

The question says which modalities the answer is based on ("... based on the image and text?"), and with
FedMLLM's prompt augmentation one wording whatever is present ("..., without considering the modality?"),
used alike in training and evaluation. Context text comes as "Text: ...", and multiple-choice rows list
their options lettered on one line, "Options: (A) not-hateful (B) hateful", and are trained to answer
"(B) hateful"; other rows answer with the ``answer`` string itself. There is no instruction line and no
closing line (the ``fedmllm`` style has both).

The module-level functions are the style itself (``agnostic`` as an argument); they stay importable from
:mod:`fedray.data.prompts` for code that renders the default wording directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from fedray.data.prompts.base import (
    AGNOSTIC_WORDS,
    Message,
    PromptStyle,
    choice_target,
    format_choice,
    register_style,
)

AGNOSTIC_PHRASE = AGNOSTIC_WORDS


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
    return choice_target(row)


def user_message(row: Mapping[str, Any], agnostic: bool = False) -> Message:
    """The user turn: an image slot when the row has an image, then the text."""
    return FedRayStyle(params=FedRayParams(), agnostic=agnostic).user_message(row)


def assistant_message(answer: str) -> Message:
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}


@dataclass(frozen=True)
class FedRayParams:
    """The ``fedray`` style takes no parameters."""


@register_style("fedray", params=FedRayParams)
class FedRayStyle(PromptStyle):
    """fedray's own wording (see the module docstring); the default, so earlier runs stay identical."""

    def user_text(self, row: Mapping[str, Any]) -> str:
        return user_text(row, self.agnostic)
