"""The ``assembled`` model's processor: chat template, image placeholders and pixel preprocessing.

It offers what :class:`fedray.models.collate.Collator` uses of a Hugging Face processor: ``.tokenizer``,
``apply_chat_template(messages, add_generation_prompt=..., tokenize=False)`` and
``__call__(text=[...], images=[...] or None, return_tensors="pt")``.

An image slot is rendered as one placeholder token, and ``__call__`` expands it to ``grid²`` copies, one per
projected image feature; the model swaps those positions' embeddings for the image tokens. The placeholder
is ``<empty_output>``, an existing special token of SmolLM2's vocabulary (id 16, from its StarCoder-style
pretraining data markers): being special it is never produced by tokenizing ordinary text, and being
already in the vocabulary the embedding matrix needs no new row (which would be untrained, and would make
the frozen base differ between a resized model and the converted checkpoint).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from fedray.errors import ModelError

IMAGE_PLACEHOLDER = "<empty_output>"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class AssembledProcessor:
    """Tokenizer + image preprocessing for the assembled VLM (images resized to ``image_size`` squared)."""

    def __init__(self, tokenizer: Any, image_size: int, image_grid: int,
                 placeholder: str = IMAGE_PLACEHOLDER) -> None:
        ids = tokenizer(placeholder, add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
            raise ModelError(f"the tokenizer does not have {placeholder!r} as one token (got ids {ids}); "
                             f"the assembled model needs it as its image placeholder. Use SmolLM2's "
                             f"tokenizer (`make assets-real`) or add it as a special token")
        if tokenizer.chat_template is None:
            raise ModelError("the language model's tokenizer has no chat template; convert the GGUF "
                             "again with `make assets-real` (the template is stored in the GGUF)")
        self.tokenizer = tokenizer
        self.placeholder = placeholder
        self.image_token_id = ids[0]
        self.image_size = image_size
        self.tokens_per_image = image_grid * image_grid

    # -- text ---------------------------------------------------------------------------------------
    def flatten(self, content: Any) -> str:
        """Message content (a string, or a list of {"type": "image"} / {"type": "text"} items) as text."""
        if isinstance(content, str):
            return content
        parts = []
        for item in content:
            if item.get("type") == "image":
                parts.append(self.placeholder + "\n")
            elif item.get("type") == "text":
                parts.append(item["text"])
            else:
                raise ModelError(f"unsupported message content item {item!r}: expected type image or text")
        return "".join(parts)

    def apply_chat_template(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = False,
                            tokenize: bool = False, **kwargs: Any) -> str:
        """The language model's own chat template over messages whose content lists are flattened.

        SmolLM2's template concatenates ``message['content']`` as a string, so image slots become the
        placeholder (one token; expanded by ``__call__``) on their own line before the text.
        """
        if tokenize:
            raise ModelError("AssembledProcessor.apply_chat_template renders text only (tokenize=False); "
                             "tokenize with the processor's __call__, which expands image placeholders")
        flat = [{"role": m["role"], "content": self.flatten(m["content"])} for m in messages]
        return self.tokenizer.apply_chat_template(flat, add_generation_prompt=add_generation_prompt,
                                                  tokenize=False, **kwargs)

    # -- batches ------------------------------------------------------------------------------------
    def __call__(self, text: str | Sequence[str], images: Sequence[Any] | None = None,
                 return_tensors: str = "pt", **kwargs: Any) -> dict[str, torch.Tensor]:
        """input_ids/attention_mask (padded as the tokenizer pads) and, with images, pixel_values."""
        if return_tensors != "pt":
            raise ModelError(f"AssembledProcessor returns torch tensors only (return_tensors='pt'), got "
                             f"{return_tensors!r}")
        texts = [text] if isinstance(text, str) else list(text)
        images = list(images or [])
        slots = sum(t.count(self.placeholder) for t in texts)
        if slots != len(images):
            raise ModelError(f"{slots} image placeholder(s) in the text but {len(images)} image(s) given")
        expanded = [t.replace(self.placeholder, self.placeholder * self.tokens_per_image) for t in texts]
        # The chat template already writes every special token the model expects, so none are added
        # (SmolLM2's tokenizer adds none by default either; a tiny test tokenizer might add a BOS).
        encoded = self.tokenizer(expanded, add_special_tokens=False, padding=True, return_tensors="pt")
        out = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        if images:
            out["pixel_values"] = self.pixel_values(images)
        return out

    def pixel_values(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images → (N, 3, S, S) float32, RGB, resized (bicubic) and normalised with ImageNet stats."""
        from PIL import Image

        size = (self.image_size, self.image_size)
        arrays = [np.asarray(image.convert("RGB").resize(size, Image.BICUBIC), dtype=np.float32) / 255.0
                  for image in images]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (N, 3, S, S) in [0, 1]
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (pixels - mean) / std

    # Decoding helpers, so the processor can stand in for a Hugging Face one in scripts.
    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)
