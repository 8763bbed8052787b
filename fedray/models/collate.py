"""Batches for training (prompt masked out of the loss) and for generation (left-padded prompts).

Works through the processor's chat template, so the same code serves the tiny model and any Hugging Face
image-text-to-text model: the answer's tokens are whatever the template puts after the generation prompt.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from fedray.data.prompts import assistant_message, target_text, user_message
from fedray.data.schema import decode_image
from fedray.errors import DataError

IGNORE_INDEX = -100


class Collator:
    """Turns sample rows (dicts in the Arrow sample schema) into model inputs."""

    def __init__(self, processor: Any, max_length: int, agnostic_prompt: bool = False) -> None:
        self.processor = processor
        self.agnostic_prompt = agnostic_prompt  # FedMLLM's prompt augmentation (see fedray.data.prompts)
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id

    # -- one sample -----------------------------------------------------------------------------
    def _prompt(self, row: Mapping[str, Any]) -> tuple[list[int], dict[str, torch.Tensor]]:
        messages = [user_message(row, self.agnostic_prompt)]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        images = [decode_image(row["image"])] if row.get("image") is not None else None
        encoded = self.processor(text=[text], images=images, return_tensors="pt")
        ids = encoded.pop("input_ids")[0].tolist()
        encoded.pop("attention_mask", None)
        return ids, dict(encoded)

    def _answer_ids(self, row: Mapping[str, Any]) -> list[int]:
        # The answer is the text the template adds after the generation prompt (e.g. " seven</s>").
        user = [user_message(row, self.agnostic_prompt)]
        prompt = self.processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        full = self.processor.apply_chat_template(
            user + [assistant_message(target_text(row))], tokenize=False
        )
        if not full.startswith(prompt):
            raise DataError("the chat template renders the prompt differently with and without the "
                            "answer; fedray cannot locate the answer tokens for this model")
        return self.tokenizer(full[len(prompt):].rstrip(), add_special_tokens=False)["input_ids"]

    # -- batches --------------------------------------------------------------------------------
    def train_batch(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """input_ids/attention_mask/labels (B, T), right-padded; vision tensors concatenated."""
        sequences, label_rows, vision = [], [], []
        for row in rows:
            prompt_ids, extras = self._prompt(row)
            answer_ids = self._answer_ids(row)
            ids = (prompt_ids + answer_ids)[: self.max_length]
            labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[: self.max_length]
            if len(prompt_ids) >= self.max_length:
                raise DataError(f"sample {row.get('id')}: the prompt alone is {len(prompt_ids)} tokens, "
                                f"over model.max_length={self.max_length}; raise model.max_length")
            sequences.append(ids)
            label_rows.append(labels)
            vision.append(extras)
        batch = _pad(sequences, self.pad_id, left=False)
        batch["labels"] = _pad(label_rows, IGNORE_INDEX, left=False)["input_ids"]
        batch.update(_concat_vision(vision))
        return batch

    def generation_batch(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Left-padded prompts so that generated tokens start at the same position for every row."""
        prompts, vision = zip(*(self._prompt(row) for row in rows))
        batch = _pad(list(prompts), self.pad_id, left=True)
        batch.update(_concat_vision(list(vision)))
        return batch


def _pad(sequences: list[list[int]], pad_value: int, left: bool) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_value, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[i, span] = torch.tensor(seq, dtype=torch.long)
        mask[i, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _concat_vision(per_sample: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    # Only samples with an image contribute; the model matches features to image tokens in order.
    keys = sorted({k for extras in per_sample for k in extras})
    return {k: torch.cat([e[k] for e in per_sample if k in e], dim=0) for k in keys}
