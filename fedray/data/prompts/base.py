"""The prompt-style contract: how a sample row becomes the user's turn and the assistant's answer.

The model's chat template (applied by the processor) decides the tokens; a style decides the content: the
words of the user turn (instruction, context text, question, options, closing line) and the assistant's
target text. A missing modality is absent, never imputed: a row whose ``image`` is None gets no image slot
and a row whose ``text`` is None gets no context line, whatever the style.

A style is registered by name in :data:`PROMPT_STYLES` with its parameter dataclass (the ``prompts``
section's inline keys) and built once per run by :func:`build_prompt_style`. It is a frozen value, so it
travels to the actors as is, and :meth:`PromptStyle.fingerprint` names everything that changes its
output: caches of rendered or tokenized samples key on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import string
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

from fedray.config.params import params_or_raise
from fedray.config.schema import PromptsConfig
from fedray.errors import ConfigError
from fedray.registry import Registry

Message = dict[str, Any]

#: FedMLLM's prompt augmentation: the words that replace every mention of the modalities present.
AGNOSTIC_WORDS = "without considering the modality"
#: The flat form of an image slot in :meth:`PromptStyle.user_display` (the reference's training files).
IMAGE_MARK = "<image>"


def choice_letter(index: int) -> str:
    """"A" for 0, "B" for 1, ...; options beyond Z are not supported by the lettered format."""
    if not 0 <= index < len(string.ascii_uppercase):
        raise ValueError(f"option index {index} outside A..Z")
    return string.ascii_uppercase[index]


def format_choice(index: int, text: str) -> str:
    """The lettered form of one option, also the usual training target: "(B) hateful"."""
    return f"({choice_letter(index)}) {text}"


def has_image(row: Mapping[str, Any]) -> bool:
    return row.get("image") is not None


def has_text(row: Mapping[str, Any]) -> bool:
    return row.get("text") is not None


def insert_before_end(sentence: str, words: str) -> str:
    """``words`` put before ``sentence``'s final "?", "." or "!" (or at its end when it has none).

    ``words`` carries its own joiner: "Is it hateful?" + " based on the text" → "Is it hateful based on
    the text?"; + ", without considering the modality" → "Is it hateful, without considering the modality?".
    """
    body = sentence.rstrip()
    end = body[-1] if body and body[-1] in "?.!" else ""
    return f"{body[: len(body) - len(end)]}{words}{end}"


def choice_target(row: Mapping[str, Any], option_text: Any = format_choice) -> str:
    """The answer of a row: ``option_text(index, answer)`` when the answer is one of its choices, else the
    answer string itself (open-ended rows, and choice rows whose answer is not an option)."""
    answer = str(row["answer"])
    choices = row.get("choices")
    if choices and answer in choices:
        return option_text(list(choices).index(answer), answer)
    return answer


@dataclasses.dataclass(frozen=True)
class PromptStyle(ABC):
    """A prompt style: ``params`` (its registered parameter dataclass) and whether the wording is FedMLLM's
    modality-agnostic augmentation (``agnostic``: one wording whatever the sample holds)."""

    params: Any
    agnostic: bool = False

    name: ClassVar[str] = ""
    #: Bumped whenever a style's code renders differently, so that caches keyed on the fingerprint miss.
    version: ClassVar[int] = 1

    @abstractmethod
    def user_text(self, row: Mapping[str, Any]) -> str:
        """The text of the user turn (the image, when present, is a separate slot before it)."""

    def option_text(self, index: int, option: str) -> str:
        """How an option is written as an answer; the target of a choice row."""
        return format_choice(index, option)

    def target_text(self, row: Mapping[str, Any]) -> str:
        """What the assistant is trained to say."""
        return choice_target(row, self.option_text)

    def user_message(self, row: Mapping[str, Any]) -> Message:
        """The user turn: an image slot when the row has an image, then the text."""
        content: list[dict[str, Any]] = [{"type": "image"}] if has_image(row) else []
        content.append({"type": "text", "text": self.user_text(row)})
        return {"role": "user", "content": content}

    def assistant_message(self, row: Mapping[str, Any]) -> Message:
        return {"role": "assistant", "content": [{"type": "text", "text": self.target_text(row)}]}

    def user_display(self, row: Mapping[str, Any]) -> str:
        """The user turn as one string, the image slot written ``<image>`` on its own line (the form of
        FedMLLM's training files, so the two compare character for character)."""
        text = self.user_text(row)
        return f"{IMAGE_MARK}\n{text}" if has_image(row) else text

    def fingerprint(self) -> str:
        """A stable string naming everything that changes the rendered text: the style, its code version,
        its parameters and ``agnostic``. Equal fingerprints render every row identically."""
        payload = json.dumps({"style": self.name, "version": self.version, "agnostic": self.agnostic,
                              "params": dataclasses.asdict(self.params)}, sort_keys=True)
        return f"{self.name}-v{self.version}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


PROMPT_STYLES: Registry[type[PromptStyle]] = Registry("prompt style")


def register_style(name: str, params: type) -> Any:
    """Class decorator: register a :class:`PromptStyle` subclass under ``name`` with its parameters."""

    def add(cls: type[PromptStyle]) -> type[PromptStyle]:
        cls.name = name
        return PROMPT_STYLES.register(name, params=params)(cls)

    return add


def prompt_style_problems(cfg: PromptsConfig) -> list[str]:
    """Every problem with the ``prompts`` section: an unknown style, or bad style parameters."""
    if cfg.style not in PROMPT_STYLES:
        return [f"prompts.style: {PROMPT_STYLES.unknown_message(cfg.style)}"]
    return PROMPT_STYLES.parse(cfg.style, cfg.options, "prompts")[1]


def build_prompt_style(cfg: PromptsConfig, agnostic: bool = False) -> PromptStyle:
    """The style the ``prompts`` section names, with FedMLLM's augmentation when ``agnostic``."""
    problems = prompt_style_problems(cfg)
    if problems:
        raise ConfigError(problems)
    params = params_or_raise(PROMPT_STYLES.params_class(cfg.style), cfg.options, "prompts")
    return PROMPT_STYLES.get(cfg.style)(params=params, agnostic=agnostic)
