"""Generation gets enough new tokens for the eval set's longest answer unless told otherwise."""

from __future__ import annotations

import logging

from fedray.config import scenario_from_dict
from fedray.data.sources import read_source
from fedray.engine.actors import ClientActor
from fedray.engine.client_setup import ClientSetup


def _actor(max_new_tokens=None) -> tuple[ClientActor, list[dict]]:
    s = scenario_from_dict({
        "name": "budget", "seed": 0,
        "model": {"max_length": 200, "tiny": {"text_layers": 1, "vision_layers": 1}},
        "eval": {"max_new_tokens": max_new_tokens},
    })
    table = read_source("glyphs", {"max_per_class": 3}).splits["train"]
    return ClientActor(ClientSetup.from_scenario(s), table, {"test": table}), table.to_pylist()


def test_budget_defaults_to_the_longest_answer_in_model_tokens():
    actor, rows = _actor()
    lengths = [actor.collator.answer_length(row) for row in rows]
    assert min(lengths) < max(lengths)  # "(A) Latin" vs "(C) Georgian": the longest decides
    assert actor._answer_budget("test") == max(lengths)


def test_an_explicit_budget_below_the_longest_answer_is_kept_and_reported(caplog):
    actor, _ = _actor(max_new_tokens=2)
    with caplog.at_level(logging.WARNING, logger="fedray.engine.actors"):
        assert actor._answer_budget("test") == 2
    assert "cut short" in caplog.text and "eval.max_new_tokens=2" in caplog.text


def test_an_ample_explicit_budget_is_used_silently(caplog):
    actor, _ = _actor(max_new_tokens=40)
    with caplog.at_level(logging.WARNING, logger="fedray.engine.actors"):
        assert actor._answer_budget("test") == 40
    assert caplog.text == ""
