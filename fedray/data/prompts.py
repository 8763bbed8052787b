"""Turning a sample into chat messages.

The model-specific chat template (applied by the processor) decides the exact tokens; this module decides
only the content: which modalities are present and how the question, context and choices are worded.
"""

from __future__ import annotations

from typing import Any, Mapping

Message = dict[str, Any]


def user_text(sample: Mapping[str, Any]) -> str:
    """Context text (if present), the question, and the options for multiple-choice samples."""
    parts = []
    if sample.get("text"):
        parts.append(f"Text: {sample['text']}")
    parts.append(str(sample["question"]))
    choices = sample.get("choices")
    if choices:
        parts.append("Options: " + ", ".join(choices) + ".")
    return "\n".join(parts)


def user_message(sample: Mapping[str, Any]) -> Message:
    """The user turn: an image slot when the sample has an image, then the text."""
    content: list[dict[str, Any]] = []
    if sample.get("image") is not None:
        content.append({"type": "image"})
    content.append({"type": "text", "text": user_text(sample)})
    return {"role": "user", "content": content}


def assistant_message(answer: str) -> Message:
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}
