"""Greedy generation over sample rows, batched: pure torch, no Ray."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from fedray.client.train import move_batch
from fedray.models.collate import Collator, Encodings, input_dtype


@torch.no_grad()
def generate_answers(model: Any, collator: Collator, rows: Sequence[Mapping[str, Any]] | Encodings,
                     batch_size: int, max_new_tokens: int) -> list[str]:
    """Decode ``max_new_tokens`` greedily for each row; returns the generated text only.

    Works for every family the collator handles: prompts are left-padded (so every row's new tokens start
    at the same column), per-token extras such as Qwen2-VL's ``mm_token_type_ids`` are padded with them,
    and only rows with an image contribute vision tensors. ``rows`` may be prepared
    :class:`~fedray.models.collate.Encodings`, whose prompts are already encoded.
    """
    samples = collator.encodings(rows)
    model.eval()
    device, dtype = next(model.parameters()).device, input_dtype(model)
    outputs: list[str] = []
    for start in range(0, len(samples), batch_size):
        prompts = [samples.encoded(i) for i in range(start, min(start + batch_size, len(samples)))]
        batch = move_batch(collator.stack_generation(prompts), device, dtype)
        generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                   pad_token_id=collator.pad_id)
        new_tokens = generated[:, batch["input_ids"].shape[1]:]  # (B, new)
        outputs += collator.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return outputs
