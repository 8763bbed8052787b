"""The ``template`` prompt style: the user turn written in the scenario, so prompt wordings can be swept.

A multiple-choice row renders ``template``, an open-ended row ``open_template``; both are Python format
strings over these placeholders:

- ``{instruction}``: ``instruction``, with what the answer is based on put before its final punctuation;
- ``{text}``: the context text (empty when the row holds none);
- ``{question}``: the row's question, qualified like the instruction;
- ``{options}``: ``options_header``, then each lettered option, ``options_separator`` before each;
- ``{ending}``: ``ending``.

A template line whose placeholders all render empty is dropped (so "Text: {text}" disappears with the
text). "What the answer is based on" is " based on the text and image" (``both_modalities``), " based on
the text", " based on the image" or nothing; with the augmentation ", without considering the modality";
``qualify: false`` leaves both sentences as written. The assistant says ``target`` (placeholders
``{letter}`` and ``{option}``) for a choice row and the bare answer otherwise.

The defaults are the ``fedmllm`` style's wording, so a sweep can start from it and change one part::

    prompts: {style: template, ending: "Answer with the option's letter."}
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Mapping

from fedray.config.schema import spec
from fedray.data.prompts.base import PromptStyle, choice_letter, has_text, insert_before_end, register_style
from fedray.data.prompts.fedmllm import DEFAULT_BOTH, ENDING, INSTRUCTION, OPTIONS_HEADER, modality_words

PLACEHOLDERS = ("instruction", "text", "question", "options", "ending")
TARGET_PLACEHOLDERS = ("letter", "option")


@dataclass(frozen=True)
class TemplateParams:
    """The ``template`` style's parts (see the module docstring)."""

    template: str = spec("{instruction}\n{text}\n{question}\n{options}\n{ending}",
                         help="user turn of a multiple-choice row; placeholders {instruction} {text} "
                              "{question} {options} {ending}")
    open_template: str = spec("{text}\n{question}", help="user turn of an open-ended row (no options)")
    instruction: str = spec(INSTRUCTION, help="the instruction sentence ({instruction})")
    ending: str = spec(ENDING, help="the closing line ({ending})")
    options_header: str = spec(OPTIONS_HEADER, help="what {options} starts with")
    options_separator: str = spec("\n", help="what comes before each lettered option in {options}")
    qualify: bool = spec(True, help="say what the answer is based on in the instruction and the question")
    both_modalities: str = spec(DEFAULT_BOTH, help="how the qualifier names image and text together")
    target: str = spec("({letter}) {option}", help="the answer of a choice row; placeholders {letter} "
                                                  "{option}")

    def problems(self) -> list[str]:
        out = []
        for name, allowed in (("template", PLACEHOLDERS), ("open_template", PLACEHOLDERS),
                              ("target", TARGET_PLACEHOLDERS)):
            try:
                used = {field for _, field, _, _ in string.Formatter().parse(getattr(self, name)) if field}
            except ValueError as err:
                out.append(f"{name}: not a format string ({err}); write a literal brace as {{{{ or }}}}")
                continue
            unknown = sorted(used - set(allowed))
            if unknown:
                out.append(f"{name}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
                           f"allowed: {', '.join('{' + a + '}' for a in allowed)}")
        return out


@register_style("template", params=TemplateParams)
class TemplateStyle(PromptStyle):
    """A user-written prompt (see the module docstring)."""

    def user_text(self, row: Mapping[str, Any]) -> str:
        p: TemplateParams = self.params
        words = modality_words(row, self.agnostic, p.both_modalities) if p.qualify else ""
        choices = row.get("choices")
        parts = {
            "instruction": insert_before_end(p.instruction, words) if p.instruction else "",
            "text": str(row["text"]) if has_text(row) else "",
            "question": insert_before_end(str(row["question"]), words),
            "options": p.options_header + "".join(p.options_separator + self.option_label(i, c)
                                                  for i, c in enumerate(choices)) if choices else "",
            "ending": p.ending,
        }
        return render_lines(p.template if choices else p.open_template, parts)

    def option_label(self, index: int, option: str) -> str:
        """An option as the user turn lists it: always "(B) hateful", whatever ``target`` says."""
        return f"({choice_letter(index)}) {option}"

    def option_text(self, index: int, option: str) -> str:
        return self.params.target.format(letter=choice_letter(index), option=option)


def render_lines(template: str, parts: Mapping[str, str]) -> str:
    """``template`` filled from ``parts``, without the lines whose placeholders all rendered empty."""
    kept = []
    for line in template.split("\n"):
        fields = [f for _, f, _, _ in string.Formatter().parse(line) if f]
        if fields and not any(parts[f] for f in fields):
            continue
        kept.append(line.format(**parts))
    return "\n".join(kept)
