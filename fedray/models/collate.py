"""Batches for training (prompt masked out of the loss) and for generation (left-padded prompts).

Works through the processor's chat template, so the same code serves the tiny model and any Hugging Face
image-text-to-text model: the answer's tokens are whatever the template puts after the generation prompt.

Families differ in what else the processor returns, and the batch code handles each kind generically:

- per-token tensors, shape (1, T) like ``input_ids`` (Qwen2-VL's ``mm_token_type_ids``, which its M-RoPE
  positions need): padded, truncated and extended over the answer exactly like ``input_ids`` (with 0, "text");
- per-image tensors (``pixel_values``, Qwen2-VL's flattened patches and ``image_grid_thw``, Idefics3's
  ``pixel_attention_mask``): concatenated over the rows that have an image, in row order. Where rows
  differ beyond the first dimension (Idefics3 splits each image into a varying number of crops) they are
  zero-padded first; the model drops all-zero crops.

A sample is first encoded (:class:`Encoded`: the processor's and tokenizer's output for it) and then
batched (:meth:`Collator.stack_train`, :meth:`Collator.stack_generation`: cut, pad, stack). Batching does
no tokenizing or image processing, so encodings made once (:mod:`fedray.client.prepared`) batch exactly
like those made at every step (:meth:`Collator.train_batch`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import torch

from fedray.data.prompts import PromptStyle, default_style
from fedray.data.schema import decode_image
from fedray.errors import DataError

IGNORE_INDEX = -100
_NO_TOKENS = torch.zeros(0, dtype=torch.long)


@dataclass(frozen=True)
class Encoded:
    """One sample as model inputs, before batching: what the processor and tokenizer make of it.

    Batching (:meth:`Collator.stack_train`, :meth:`Collator.stack_generation`) only concatenates, truncates,
    pads and stacks these, so a sample encoded once (:mod:`fedray.client.prepared`) gives the same batches
    as one encoded at every step.
    """

    tokens: Mapping[str, torch.Tensor]  # per-token (T,) integer tensors of the prompt, input_ids first
    vision: Mapping[str, torch.Tensor]  # per-image tensors, first dim over images; {} without an image
    answer_ids: torch.Tensor = _NO_TOKENS  # (A,) the target's tokens, end-of-turn token included
    sample_id: Any = None  # for error messages

    @property
    def prompt_length(self) -> int:
        return int(self.tokens["input_ids"].shape[0])


class Encodings(ABC):
    """Samples in a fixed order, each available as :class:`Encoded` and as its (masked) row.

    The row is the sample dict without any decoding; scoring needs it to encode other answers than the
    target (:meth:`with_answer`).
    """

    collator: Collator

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def encoded(self, i: int) -> Encoded:
        """Sample ``i`` with its target answer."""

    @abstractmethod
    def row(self, i: int) -> Mapping[str, Any]:
        """Sample ``i`` as a row of the sample schema (modalities it lacks are None)."""

    def with_answer(self, i: int, answer: str) -> Encoded:
        """Sample ``i`` with ``answer`` in place of its target (the prompt and image are unchanged)."""
        ids = self.collator.answer_ids({**self.row(i), "answer": answer})
        return replace(self.encoded(i), answer_ids=torch.tensor(ids, dtype=torch.long))


class RowEncodings(Encodings):
    """Sample rows encoded by the collator whenever asked: nothing is kept between calls."""

    def __init__(self, collator: Collator, rows: Sequence[Mapping[str, Any]]) -> None:
        self.collator, self.rows = collator, rows

    def __len__(self) -> int:
        return len(self.rows)

    def encoded(self, i: int) -> Encoded:
        return self.collator.encode(self.rows[i])

    def row(self, i: int) -> Mapping[str, Any]:
        return self.rows[i]


class Collator:
    """Turns sample rows (dicts in the Arrow sample schema) into model inputs."""

    def __init__(self, processor: Any, max_length: int, prompt: PromptStyle | None = None) -> None:
        self.processor = processor
        self.prompt = prompt or default_style()  # the words of both turns (see fedray.data.prompts)
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id

    # -- one sample -----------------------------------------------------------------------------
    def encode(self, row: Mapping[str, Any], with_answer: bool = True) -> Encoded:
        """``row``'s prompt (tokens and image tensors) and, ``with_answer``, its target's tokens."""
        messages = [self.prompt.user_message(row)]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        images = [decode_image(row["image"])] if row.get("image") is not None else None
        encoded = dict(self.processor(text=[text], images=images, return_tensors="pt"))
        encoded.pop("attention_mask", None)  # rebuilt by _pad
        length = encoded["input_ids"].shape[-1]
        tokens = {k: v[0] for k, v in encoded.items() if _is_per_token(v, length)}
        vision = {k: v for k, v in encoded.items() if k not in tokens}
        answer = torch.tensor(self.answer_ids(row), dtype=torch.long) if with_answer else _NO_TOKENS
        return Encoded(tokens=tokens, vision=vision, answer_ids=answer, sample_id=row.get("id"))

    def answer_ids(self, row: Mapping[str, Any]) -> list[int]:
        """The target's tokens: the text the template adds after the generation prompt (e.g. " seven</s>")."""
        user = [self.prompt.user_message(row)]
        prompt = self.processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        full = self.processor.apply_chat_template(
            user + [self.prompt.assistant_message(row)], tokenize=False
        )
        if not full.startswith(prompt):
            raise DataError("the chat template renders the prompt differently with and without the "
                            "answer; fedray cannot locate the answer tokens for this model")
        return self.tokenizer(full[len(prompt):].rstrip(), add_special_tokens=False)["input_ids"]

    def answer_length(self, row: Mapping[str, Any]) -> int:
        """Tokens of ``row``'s target answer, end-of-turn token included: what generation must produce."""
        return len(self.answer_ids(row))

    def encodings(self, rows: Sequence[Mapping[str, Any]] | Encodings) -> Encodings:
        """``rows`` as :class:`Encodings`: prepared samples as they are, sample rows encoded on demand."""
        return rows if isinstance(rows, Encodings) else RowEncodings(self, rows)

    # -- batches --------------------------------------------------------------------------------
    def train_batch(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """input_ids/attention_mask/labels (B, T), right-padded; vision tensors concatenated."""
        return self.stack_train([self.encode(row) for row in rows])

    def generation_batch(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Left-padded prompts so that generated tokens start at the same position for every row."""
        return self.stack_generation([self.encode(row, with_answer=False) for row in rows])

    def stack_train(self, samples: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """The training batch of encoded samples: prompt + answer cut at ``max_length``, the prompt
        masked out of ``labels``; right-padded."""
        token_rows, label_rows = [], []
        for sample in samples:
            prompt_len = sample.prompt_length
            if prompt_len >= self.max_length:
                raise DataError(f"sample {sample.sample_id}: the prompt alone is {prompt_len} tokens, "
                                f"over model.max_length={self.max_length}; raise model.max_length")
            answer = sample.answer_ids
            # Answer tokens are text: 0 in every other per-token tensor (e.g. mm_token_type_ids).
            token_rows.append({k: torch.cat([v, answer if k == "input_ids" else _zeros(answer, v.dtype)])
                               [: self.max_length] for k, v in sample.tokens.items()})
            ignored = torch.full((prompt_len,), IGNORE_INDEX, dtype=torch.long)
            label_rows.append(torch.cat([ignored, answer])[: self.max_length])
        batch = _pad_tokens(token_rows, self.pad_id, left=False)
        batch["labels"] = _pad(label_rows, IGNORE_INDEX, left=False)["input_ids"]
        batch.update(_concat_vision([s.vision for s in samples]))
        return batch

    def stack_generation(self, samples: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """The generation batch of encoded samples: their prompts left-padded, vision concatenated."""
        batch = _pad_tokens([dict(s.tokens) for s in samples], self.pad_id, left=True)
        batch.update(_concat_vision([s.vision for s in samples]))
        return batch


def input_dtype(model: Any) -> torch.dtype:
    """The dtype floating inputs (pixel values) should take: that of the model's first floating parameter.

    Not simply the first parameter's: a 4-bit model's quantized weights are stored as uint8.
    """
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def _zeros(like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(len(like), dtype=dtype)


def _is_per_token(value: torch.Tensor, length: int) -> bool:
    # Integer (1, T) tensors aligned with input_ids; pixel tensors are floating and image metadata
    # (image_grid_thw, image_sizes) is (num_images, k) with k far below any prompt length.
    return value.dim() == 2 and value.shape == (1, length) and not value.is_floating_point()


def _pad_tokens(rows: list[dict[str, torch.Tensor]], pad_id: int, left: bool) -> dict[str, torch.Tensor]:
    """input_ids/attention_mask padded with ``pad_id``; every other per-token tensor padded with 0."""
    batch = _pad([r["input_ids"] for r in rows], pad_id, left)
    for key in sorted({k for r in rows for k in r} - {"input_ids"}):
        # A row whose processor returned no such tensor (none of its tokens are special) counts as 0s.
        seqs = [r[key] if key in r else torch.zeros_like(r["input_ids"]) for r in rows]
        batch[key] = _pad(seqs, 0, left)["input_ids"]
    return batch


def _pad(sequences: Sequence[torch.Tensor], pad_value: int, left: bool) -> dict[str, torch.Tensor]:
    """(T_i,) integer tensors → ids and attention mask (B, T), padded with ``pad_value``."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_value, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[i, span] = seq
        mask[i, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _concat_vision(per_sample: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    # Only samples with an image contribute; the model matches features to image tokens in order.
    keys = sorted({k for extras in per_sample for k in extras})
    return {k: _cat_padded([e[k] for e in per_sample if k in e]) for k in keys}


def _cat_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate on dim 0, zero-padding the trailing dims to the largest (e.g. Idefics3's crop count)."""
    shape = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim())]
    padded = []
    for t in tensors:
        pad = []  # F.pad wants (last_lo, last_hi, ..., dim1_lo, dim1_hi)
        for d in reversed(range(1, t.dim())):
            pad += [0, shape[d - 1] - t.shape[d]]
        padded.append(torch.nn.functional.pad(t, pad) if any(pad) else t)
    return torch.cat(padded, dim=0)
