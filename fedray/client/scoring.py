"""Option log-likelihood scoring: how likely the model finds each candidate answer, by teacher forcing.

Greedy generation gives a hard answer; these scores give the continuous ones a real ROC-AUC needs
(log P("(B) ...") − log P("(A) ...")) and allow multiple choice without generation. Pure torch, no Ray.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from fedray.client.train import move_batch
from fedray.models.collate import IGNORE_INDEX, Collator, Encodings, input_dtype


@torch.no_grad()
def option_logprobs(model: Any, collator: Collator, rows: Sequence[Mapping[str, Any]] | Encodings,
                    options: Sequence[Sequence[str]], batch_size: int) -> list[list[float]]:
    """log P(answer | prompt) for each row and each of its candidate answers, summed over answer tokens.

    A candidate is scored as the training target would be: the row with ``answer`` replaced by it, batched
    like a training sample (``collator.stack_train``), so the tokens counted are those the chat template puts
    after the prompt (end-of-turn token included). A candidate cut by ``model.max_length`` is scored on its
    kept tokens. ``rows`` may be prepared :class:`~fedray.models.collate.Encodings`: their prompts and
    images come encoded, and only each candidate's answer is tokenized.
    Returns one list per row, in the order of ``options[row]``.
    """
    if len(options) != len(rows):
        raise ValueError(f"{len(options)} option lists for {len(rows)} rows")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    samples = collator.encodings(rows)
    candidates = [(i, text) for i, texts in enumerate(options) for text in texts]
    device, dtype = next(model.parameters()).device, input_dtype(model)
    was_training = model.training
    model.eval()
    flat: list[float] = []
    try:
        for start in range(0, len(candidates), batch_size):
            batch = collator.stack_train([samples.with_answer(i, text)
                                          for i, text in candidates[start: start + batch_size]])
            flat += _answer_logprobs(model, move_batch(batch, device, dtype)).tolist()
    finally:
        model.train(was_training)
    out, cursor = [], 0
    for texts in options:
        out.append(flat[cursor: cursor + len(texts)])
        cursor += len(texts)
    return out


def _answer_logprobs(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ log p(token) over each sequence's labelled tokens; (B,) float64 on CPU."""
    labels = batch.pop("labels")  # (B, T), IGNORE_INDEX outside the answer
    logits = model(**batch).logits  # (B, T, V)
    targets = labels[:, 1:]  # (B, T-1): logits at position t predict token t+1
    answer = targets != IGNORE_INDEX  # (B, T-1)
    # Only the answer positions go through log_softmax: (N, V) instead of (B, T, V).
    picked = logits[:, :-1][answer].float()  # (N, V)
    token_logprobs = picked.log_softmax(-1).gather(-1, targets[answer].unsqueeze(-1)).squeeze(-1)  # (N,)
    row_of_token = answer.nonzero()[:, 0]  # (N,)
    totals = torch.zeros(labels.shape[0], dtype=torch.float64, device=token_logprobs.device)
    return totals.index_add_(0, row_of_token, token_logprobs.double()).cpu()


def binary_auc_scores(logprobs: Sequence[Sequence[float]]) -> list[float]:
    """log P(option 1) − log P(option 0) per row: class-1 scores for :func:`fedray.client.metrics.roc_auc`."""
    if any(len(pair) != 2 for pair in logprobs):
        raise ValueError("binary_auc_scores needs exactly two option log-probabilities per row, got "
                         f"lengths {sorted({len(pair) for pair in logprobs})}")
    return [float(pair[1] - pair[0]) for pair in logprobs]
