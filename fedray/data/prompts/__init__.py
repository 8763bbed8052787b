"""Prompt styles: how a sample becomes the chat turns the model is trained and evaluated on.

``prompts.style`` picks a registered style: ``fedray`` (the default wording), ``fedmllm`` (the FedMLLM
reference's, character for character) or ``template`` (written in the scenario, for sweeps). Each style is
one file here and registers itself by being a file; see :mod:`fedray.data.prompts.base` for the contract.
The default style's functions stay importable from here.
"""

from fedray.config.load import register_semantic_check
from fedray.config.schema import Scenario
from fedray.data.prompts.base import (
    AGNOSTIC_WORDS,
    PROMPT_STYLES,
    Message,
    PromptStyle,
    build_prompt_style,
    choice_letter,
    format_choice,
    prompt_style_problems,
)
from fedray.data.prompts.fedray_style import (
    AGNOSTIC_PHRASE,
    FedRayParams,
    FedRayStyle,
    assistant_message,
    modality_phrase,
    qualified_question,
    target_text,
    user_message,
    user_text,
)
from fedray.registry import import_submodules

__all__ = ["AGNOSTIC_PHRASE", "AGNOSTIC_WORDS", "PROMPT_STYLES", "FedRayStyle", "Message", "PromptStyle",
           "assistant_message", "build_prompt_style", "choice_letter", "default_style", "format_choice",
           "modality_phrase", "prompt_style_problems", "qualified_question", "target_text", "user_message",
           "user_text"]

import_submodules(__name__)  # each file registers its style: a new style is one new file


def default_style() -> PromptStyle:
    """The ``fedray`` style without augmentation: what a Collator renders when given no style."""
    return FedRayStyle(params=FedRayParams(), agnostic=False)


@register_semantic_check
def check_prompt_style(scenario: Scenario) -> list[str]:
    """Load-time check: ``prompts.style`` is registered and its inline parameters are valid."""
    return prompt_style_problems(scenario.prompts)
