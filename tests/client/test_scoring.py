import math

import pytest
import torch
from PIL import Image

from fedray.client.scoring import binary_auc_scores, option_logprobs
from fedray.config.schema import ModelConfig
from fedray.data.schema import encode_png
from fedray.models.base import build_model
from fedray.models.collate import IGNORE_INDEX, Collator

OPTIONS = ["(A) not hateful", "(B) hateful"]


@pytest.fixture(scope="module")
def tiny():
    built = build_model(ModelConfig())
    return built.model, Collator(built.processor, max_length=128)


def _row(i, with_image=True, text="some caption"):
    image = encode_png(Image.new("RGB", (32, 32), (40 * i, 10, 200 - 30 * i))) if with_image else None
    return {"id": f"r{i}", "image": image, "text": text, "question": "Is this meme hateful?",
            "choices": ["not hateful", "hateful"], "answer": OPTIONS[i % 2], "label": i % 2}


ROWS = [_row(0), _row(1, with_image=False), _row(2, text=None), _row(3)]
ROW_OPTIONS = [OPTIONS, OPTIONS, ["(A) not hateful", "(B) hateful", "(C) a much longer third option"],
               ["(B) hateful"]]


def _model_loss_score(model, collator, row, answer):
    """−(mean token loss × answer tokens) as the model itself computes it, for one row."""
    batch = collator.train_batch([{**row, "answer": answer}])
    with torch.no_grad():
        loss = model(**batch).loss
    n_tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    return -float(loss) * n_tokens


def test_scores_are_finite_negative_and_shaped_like_options(tiny):
    model, collator = tiny
    scores = option_logprobs(model, collator, ROWS, ROW_OPTIONS, batch_size=3)
    assert [len(s) for s in scores] == [2, 2, 3, 1]
    flat = [x for s in scores for x in s]
    assert all(math.isfinite(x) and x < 0 for x in flat)


def test_scores_equal_the_models_own_loss(tiny):
    model, collator = tiny
    scores = option_logprobs(model, collator, ROWS, ROW_OPTIONS, batch_size=8)
    for row, texts, row_scores in zip(ROWS, ROW_OPTIONS, scores):
        for text, score in zip(texts, row_scores):
            assert score == pytest.approx(_model_loss_score(model, collator, row, text), abs=1e-5, rel=0)


def test_scores_do_not_depend_on_batching(tiny):
    model, collator = tiny
    one = option_logprobs(model, collator, ROWS, ROW_OPTIONS, batch_size=1)
    for batch_size in (3, 100):
        batched = option_logprobs(model, collator, ROWS, ROW_OPTIONS, batch_size=batch_size)
        for a, b in zip(one, batched):
            assert b == pytest.approx(a, abs=1e-4, rel=0)


def test_scoring_restores_training_mode_and_needs_no_grad(tiny):
    model, collator = tiny
    model.train()
    try:
        option_logprobs(model, collator, ROWS[:1], [OPTIONS], batch_size=2)
        assert model.training
    finally:
        model.eval()


def test_option_logprobs_rejects_bad_arguments(tiny):
    model, collator = tiny
    with pytest.raises(ValueError):
        option_logprobs(model, collator, ROWS, [OPTIONS], batch_size=2)
    with pytest.raises(ValueError):
        option_logprobs(model, collator, ROWS[:1], [OPTIONS], batch_size=0)
    assert option_logprobs(model, collator, [], [], batch_size=2) == []


def test_binary_auc_scores():
    assert binary_auc_scores([[-3.0, -1.0], [-2.0, -5.5]]) == [2.0, -3.5]
    assert binary_auc_scores([]) == []
    with pytest.raises(ValueError):
        binary_auc_scores([[-1.0, -2.0, -3.0]])
