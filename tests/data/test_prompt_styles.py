"""Prompt styles: the fedmllm style against the reference's strings for every dataset and modality case
(and the augmented variant), the default style unchanged, user templates, fingerprints, the plumbing."""

from __future__ import annotations

import pickle

import pytest

from fedray.config import scenario_from_dict
from fedray.config.schema import ModelConfig, PromptsConfig
from fedray.data import prompts
from fedray.data.prompts import PROMPT_STYLES, build_prompt_style, default_style
from fedray.errors import ConfigError

HM_LABELS = ["not-hateful", "hateful"]
CRISIS_LABELS = ["affected_individuals", "infrastructure_and_utility_damage", "injured_or_dead_people",
                 "missing_or_found_people", "rescue_volunteering_or_donation_effort", "vehicle_damage",
                 "other_relevant_information", "not_humanitarian"]
HM = {"id": "hateful_memes-42953", "image": b"png", "text": "its their character not their color",
      "question": "Is the content hateful?", "choices": HM_LABELS, "answer": "not-hateful", "label": 0,
      "source": "hateful_memes", "task": "hateful_memes"}
CRISIS = {"id": "crisismmd-1", "image": b"png", "text": "Flood waters rise in Houston",
          "question": "What is the humanitarian category?", "choices": CRISIS_LABELS,
          "answer": "vehicle_damage", "label": 5, "source": "crisismmd", "task": "humanitarian"}

# The reference's strings (the FedMLLM specification's training-sample format), one part per line.
INSTRUCTION = "Select the best answer to the following multiple-choice question"
ENDING = ("Answer with the option's letter from the given choices directly and only give the best option. "
          "The best answer is: ")
HM_OPTIONS = "Options:\n(A) not-hateful\n(B) hateful"
CRISIS_OPTIONS = "Options:" + "".join(f"\n({chr(65 + i)}) {label}" for i, label in enumerate(CRISIS_LABELS))
AUG = ", without considering the modality"


def fedmllm(agnostic: bool = False):
    return build_prompt_style(PromptsConfig(style="fedmllm"), agnostic)


def held(row: dict, image: bool, text: bool) -> dict:
    return {**row, "image": row["image"] if image else None, "text": row["text"] if text else None}


CASES = [  # (image, text, instruction's qualifier, Hateful Memes question, CrisisMMD question)
    (True, True, " based on the text and image", "Is the content hateful based on the text and image?",
     "What is the humanitarian category based on the image and text?"),
    (False, True, " based on the text", "Is the content hateful based on the text?",
     "What is the humanitarian category based on the text?"),
    (True, False, " based on the image", "Is the content hateful based on the image?",
     "What is the humanitarian category based on the image?"),
    (False, False, "", "Is the content hateful?", "What is the humanitarian category?"),
]


def reference_user(row: dict, image: bool, text: bool, qualifier: str, question: str, options: str) -> str:
    lines = (["<image>"] if image else []) + [f"{INSTRUCTION}{qualifier}."]
    lines += [row["text"]] if text else []
    return "\n".join(lines + [question, options, ENDING])


@pytest.mark.parametrize("image,text,qualifier,hm_question,crisis_question", CASES,
                         ids=["both", "text-only", "image-only", "neither"])
def test_fedmllm_style_is_the_references_turns_in_every_modality_case(image, text, qualifier, hm_question,
                                                                      crisis_question):
    style = fedmllm()
    for row, question, options in ((HM, hm_question, HM_OPTIONS), (CRISIS, crisis_question, CRISIS_OPTIONS)):
        sample = held(row, image, text)
        assert style.user_display(sample) == reference_user(row, image, text, qualifier, question, options)
        slots = [c["type"] for c in style.user_message(sample)["content"]]
        assert slots == (["image"] if image else []) + ["text"]
    assert style.target_text(held(HM, image, text)) == "(A) not-hateful"
    assert style.target_text(held(CRISIS, image, text)) == "(F) vehicle_damage"


def test_fedmllm_literal_strings_of_the_aligned_samples():
    """Written out once in full, so a reader sees exactly what the model is shown."""
    assert fedmllm().user_display(HM) == (
        "<image>\n"
        "Select the best answer to the following multiple-choice question based on the text and image.\n"
        "its their character not their color\n"
        "Is the content hateful based on the text and image?\n"
        "Options:\n(A) not-hateful\n(B) hateful\n"
        "Answer with the option's letter from the given choices directly and only give the best option. "
        "The best answer is: ")
    assert fedmllm().user_text(CRISIS).split("\n")[:3] == [
        "Select the best answer to the following multiple-choice question based on the text and image.",
        "Flood waters rise in Houston",
        "What is the humanitarian category based on the image and text?"]


@pytest.mark.parametrize("image,text", [(True, True), (False, True), (True, False), (False, False)])
def test_augmented_variant_changes_instruction_and_question_whatever_is_held(image, text):
    style = fedmllm(agnostic=True)
    hm = held(HM, image, text)
    assert style.user_display(hm) == reference_user(
        HM, image, text, AUG, f"Is the content hateful{AUG}?", HM_OPTIONS)
    crisis = held(CRISIS, image, text)
    assert style.user_display(crisis) == reference_user(
        CRISIS, image, text, AUG, f"What is the humanitarian category{AUG}?", CRISIS_OPTIONS)


def test_fedmllm_medical_rows_are_the_bare_question_and_answer():
    vqa = {"id": "vqa_rad-1", "image": b"png", "text": None, "question": "Are the kidneys normal?",
           "choices": None, "answer": "yes", "answer_type": "closed", "source": "vqa_rad"}
    alpaca = {"id": "medalpaca-1", "image": None, "text": None, "question": "What is the cause of gout?",
              "choices": None, "answer": "Uric acid crystals.", "source": "medalpaca"}
    style = fedmllm()
    assert style.user_display(vqa) == "<image>\nAre the kidneys normal?"
    assert style.user_display(alpaca) == "What is the cause of gout?"
    assert (style.target_text(vqa), style.target_text(alpaca)) == ("yes", "Uric acid crystals.")
    assert fedmllm(agnostic=True).user_text(vqa) == f"Are the kidneys normal{AUG}?"


def test_default_style_is_the_unchanged_fedray_wording():
    style = build_prompt_style(PromptsConfig(), agnostic=False)
    assert style == default_style() and style.name == "fedray"
    for row in (HM, held(HM, False, True), held(HM, True, False), held(HM, False, False)):
        for agnostic in (False, True):
            fedray_style = build_prompt_style(PromptsConfig(), agnostic)
            assert fedray_style.user_text(row) == prompts.user_text(row, agnostic)
            assert fedray_style.user_message(row) == prompts.user_message(row, agnostic)
            assert fedray_style.target_text(row) == prompts.target_text(row)
    assert style.user_text(HM) == ("Text: its their character not their color\n"
                                   "Is the content hateful based on the image and text?\n"
                                   "Options: (A) not-hateful (B) hateful")


def test_template_defaults_are_the_fedmllm_wording_and_parts_can_change():
    template = build_prompt_style(PromptsConfig(style="template"))
    for image, text, *_ in CASES:
        assert template.user_text(held(HM, image, text)) == fedmllm().user_text(held(HM, image, text))
    custom = build_prompt_style(PromptsConfig(style="template", options={
        "template": "Text: {text}\n{question}\n{options}", "options_header": "Options:",
        "options_separator": " ", "qualify": False, "target": "{letter}"}), agnostic=True)
    assert custom.user_text(HM) == ("Text: its their character not their color\nIs the content hateful?\n"
                                    "Options: (A) not-hateful (B) hateful")
    assert custom.user_text(held(HM, True, False)).startswith("Is the content hateful?")  # line dropped
    assert custom.target_text(HM) == "A"
    assert custom.user_text({**HM, "choices": None, "answer": "x"}) == \
        "its their character not their color\nIs the content hateful?"  # open_template


def test_bad_styles_and_templates_are_load_errors():
    with pytest.raises(ConfigError) as info:
        scenario_from_dict({"prompts": {"style": "fedmlm"}})
    assert "Did you mean 'fedmllm'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        scenario_from_dict({"prompts": {"style": "template", "template": "{question} {answer}",
                                        "target": "{letter"}})
    problems = "\n".join(info.value.problems)
    assert "unknown placeholder(s) {answer}" in problems and "prompts.target" in problems
    with pytest.raises(ConfigError):
        scenario_from_dict({"prompts": {"style": "fedmllm", "ending": "x"}})  # fedmllm takes none


def test_fingerprint_names_everything_that_changes_the_text():
    base = fedmllm()
    assert base.fingerprint() == fedmllm().fingerprint()
    assert base.fingerprint().startswith("fedmllm-v1-")
    assert pickle.loads(pickle.dumps(base)).fingerprint() == base.fingerprint()
    others = [fedmllm(agnostic=True), default_style(), build_prompt_style(PromptsConfig(style="template")),
              build_prompt_style(PromptsConfig(style="template", options={"ending": "Answer: "}))]
    prints = [base.fingerprint()] + [s.fingerprint() for s in others]
    assert len(set(prints)) == len(prints)
    assert sorted(PROMPT_STYLES) == ["fedmllm", "fedray", "template"]


def test_the_actor_setup_and_the_collator_carry_the_style():
    from fedray.engine.client_setup import ClientSetup
    from fedray.models.collate import Collator
    from fedray.models.processors import build_processor

    scenario = scenario_from_dict({"prompts": {"style": "fedmllm"}, "modality": {"agnostic_prompt": True}})
    setup = ClientSetup.from_scenario(scenario)
    assert setup.prompt == fedmllm(agnostic=True) and setup.agnostic_prompt
    assert pickle.loads(pickle.dumps(setup)) == setup
    processor = build_processor(ModelConfig())  # the tiny model's, built from config
    collator = Collator(processor, 256, prompt=setup.prompt)
    batch = collator.generation_batch([held(HM, False, True)])
    shown = processor.tokenizer.decode(batch["input_ids"][0])
    assert f"question{AUG}." in shown and "The best answer is:" in shown
    assert Collator(processor, 256).prompt == default_style()
