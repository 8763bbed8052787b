"""Prompts: wording follows the modalities present; the agnostic variant has one wording; targets."""

from __future__ import annotations

import pytest

from fedray.data.prompts import choice_letter, format_choice, target_text, user_message, user_text

ROW = {"image": b"png", "text": "its their character", "question": "Is the content hateful?",
       "choices": ["not-hateful", "hateful"], "answer": "hateful"}


def _without(**none):
    return {**ROW, **{k: None for k in none}}


def test_wording_names_the_modalities_present() -> None:
    assert user_text(ROW) == ("Text: its their character\n"
                              "Is the content hateful based on the image and text?\n"
                              "Options: (A) not-hateful (B) hateful")
    assert "hateful based on the text?" in user_text(_without(image=1))
    assert "hateful based on the image?" in user_text(_without(text=1))
    assert "Text:" not in user_text(_without(text=1))
    neither = user_text(_without(image=1, text=1))
    assert neither.startswith("Is the content hateful?\nOptions:")


def test_agnostic_prompt_is_one_wording_whatever_is_present() -> None:
    questions = {user_text(row, agnostic=True).split("\n")[-2]
                 for row in (ROW, _without(image=1), _without(text=1), _without(image=1, text=1))}
    assert questions == {"Is the content hateful, without considering the modality?"}


def test_image_slot_only_when_an_image_is_present() -> None:
    assert user_message(ROW)["content"][0] == {"type": "image"}
    assert [c["type"] for c in user_message(_without(image=1))["content"]] == ["text"]


def test_targets() -> None:
    assert target_text(ROW) == "(B) hateful"
    assert target_text({"answer": "seven", "choices": None}) == "seven"
    assert format_choice(7, "x") == "(H) x" and choice_letter(0) == "A"
    with pytest.raises(ValueError):
        choice_letter(26)


def test_question_without_final_punctuation() -> None:
    row = {"image": b"png", "text": None, "question": "Name the digit", "choices": None, "answer": "one"}
    assert user_text(row) == "Name the digit based on the image"
