"""The MiniCPM-V adapter: MiniCPM-V's model and processor behind the Hugging Face convention.

fedray's collator, training loop, scoring and generation assume the image-text-to-text convention:
``model(input_ids, attention_mask, labels, pixel_values, ...)`` returns ``.loss`` and ``.logits``;
``model.generate(**batch)`` returns prompt + new token ids; the processor takes ``text=[...]``,
``images=[...]`` and returns tensors. This module registers MiniCPM-V's
:class:`~fedray.models.families.ModelAdapter` in :data:`~fedray.models.families.ADAPTERS`, which the ``hf``
builder applies to a freshly loaded model of the family.

MiniCPM-V (read: openbmb's ``modeling_minicpmv.py`` of MiniCPM-V 2.6 and MiniCPM-Llama3-V 2.5, and the 2.6
processor ``processing_minicpmv.py`` / ``image_processing_minicpmv.py``) differs on every point:

- ``forward(data)`` takes one dict: ``input_ids``; ``pixel_values``, a list per sample of image-slice tensors
  (3, patch, h*w*patch); ``tgt_sizes``, each slice's patch grid (h, w); ``image_bound``, per sample the
  [start, end) token spans that the slices' resampled features replace; ``position_ids``. It returns the
  language model's output without a loss (openbmb's own trainer computes it from pre-shifted targets).
- ``generate`` embeds the prompt and calls ``llm.generate(inputs_embeds=...)``, so it returns only new
  tokens (2.6; decoded text with ``decode_text=True``), and 2.5 takes one ``model_inputs`` dict instead.
- The processor takes ``(texts, [[images] per text])`` with ``(<image>./</image>)`` markers in the text,
  returns the nested lists above, and the chat template is the tokenizer's, over string contents.

The adapter keeps the model object and its module tree as they are (so the LoRA presets, ``modules_to_save``
and gradient checkpointing see the paths listed in :mod:`fedray.models.families`) and gives it a same-named
subclass that adds the Hugging Face convention; MiniCPM-V's own calls (``forward(data=...)``,
``generate(model_inputs)`` or ``generate(..., image_bound=...)``) still reach its own code.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Sequence

import torch

from fedray.errors import ModelError
from fedray.models.collate import IGNORE_INDEX
from fedray.models.families import ADAPTERS, ModelAdapter

IMAGE_MARKER = "(<image>./</image>)"  # MiniCPM-V's image slot in prompt text


# -- MiniCPM-V: the processor side ----------------------------------------------------------------------

class MiniCPMVProcessorShim:
    """MiniCPM-V's processor behind the calls :class:`fedray.models.collate.Collator` makes.

    ``apply_chat_template`` renders typed message contents (``{"type": "image"}``, ``{"type": "text"}``) as
    MiniCPM-V's ``chat()`` does: one string per turn, ``(<image>./</image>)`` for the image, parts joined by
    newlines, through the tokenizer's chat template. ``__call__`` returns flat tensors:

    - ``input_ids`` (B, T) and ``attention_mask``;
    - ``image_token_mask`` (B, T): 1 inside the processor's ``image_bound`` spans (the placeholder tokens the
      image slices replace), 0 elsewhere. It is a per-token tensor, so the collator pads and extends it
      like ``input_ids``, and the model recovers each row's spans from it after any padding;
    - ``pixel_values`` (N, 3, patch, L) and ``tgt_sizes`` (N, 2): the N slices of all images in order, zero
      padded to the longest L (= h*w*patch); only when some text has an image.

    Every other attribute is the wrapped processor's.
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer

    def __getattr__(self, name: str) -> Any:
        if name == "processor":  # not yet set (e.g. while unpickling): avoid recursing
            raise AttributeError(name)
        return getattr(self.processor, name)

    def apply_chat_template(self, messages: Sequence[dict[str, Any]], **kwargs: Any) -> Any:
        flat = [{**message, "content": _flatten_content(message["content"])} for message in messages]
        return self.tokenizer.apply_chat_template(flat, **kwargs)

    def __call__(self, text: str | Sequence[str], images: Sequence[Any] | None = None,
                 return_tensors: str = "pt", **kwargs: Any) -> dict[str, torch.Tensor]:
        texts = [text] if isinstance(text, str) else list(text)
        encoded = self.processor(texts, _images_per_text(texts, images), return_tensors=return_tensors,
                                 **kwargs)
        input_ids = torch.as_tensor(encoded["input_ids"]).long()  # (B, T)
        out = {"input_ids": input_ids}
        if "attention_mask" in encoded:
            out["attention_mask"] = torch.as_tensor(encoded["attention_mask"]).long()
        slices = [s for per_text in encoded.get("pixel_values") or [] for s in per_text]
        if not slices:
            return out
        mask = torch.zeros_like(input_ids)
        for row, bounds in enumerate(encoded["image_bound"]):
            for start, end in torch.as_tensor(bounds).reshape(-1, 2).tolist():
                mask[row, start:end] = 1
        out["image_token_mask"] = mask
        width = max(s.shape[-1] for s in slices)
        out["pixel_values"] = torch.stack(
            [torch.nn.functional.pad(torch.as_tensor(s), (0, width - s.shape[-1])) for s in slices])
        out["tgt_sizes"] = torch.cat([torch.as_tensor(t).reshape(-1, 2) for t in encoded["tgt_sizes"]
                                      if len(t)]).long()  # (N, 2)
        return out


def _flatten_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [IMAGE_MARKER if item.get("type") == "image" else item.get("text", "") for item in content]
    return "\n".join(parts)


def _images_per_text(texts: list[str], images: Sequence[Any] | None) -> list[list[Any]]:
    """MiniCPM-V wants one image list per text; the collator passes one flat list for its single text."""
    if not images:
        return [[] for _ in texts]
    if all(isinstance(item, (list, tuple)) for item in images):
        return [list(item) for item in images]
    if len(texts) == 1:
        return [list(images)]
    return [[image] for image in images]


# -- MiniCPM-V: the model side ----------------------------------------------------------------------------

class MiniCPMVHFInterface:
    """Mixin for MiniCPM-V's model class: ``forward`` and ``generate`` in the Hugging Face convention.

    Inputs are what :class:`MiniCPMVProcessorShim` and the collator produce: ``input_ids``/``attention_mask``
    (B, T), optional ``labels`` (B, T), ``image_token_mask`` (B, T), ``pixel_values`` (N, 3, patch, L) and
    ``tgt_sizes`` (N, 2). They become MiniCPM-V's ``data`` dict: each row's ``image_bound`` is the runs of 1s
    in its ``image_token_mask``, and the slices are dealt to rows in order, one per span.
    """

    def forward(self, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """The language model's output, with ``loss`` (mean next-token cross-entropy) when ``labels``."""
        if data is not None:  # MiniCPM-V's own convention
            return super().forward(data, **kwargs)
        return self._forward_hf(**kwargs)

    def _forward_hf(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    labels: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None,
                    tgt_sizes: torch.Tensor | None = None, image_token_mask: torch.Tensor | None = None,
                    **kwargs: Any) -> Any:
        from transformers.modeling_outputs import CausalLMOutputWithPast

        _require_minicpmv_code(self)
        data = minicpmv_data(input_ids, attention_mask, pixel_values, tgt_sizes, image_token_mask)
        kwargs.setdefault("use_cache", False)
        out = super().forward(data, attention_mask=attention_mask, **kwargs)
        loss = None if labels is None else causal_lm_loss(out.logits, labels)
        return CausalLMOutputWithPast(loss=loss, logits=out.logits)

    @property
    def generation_config(self) -> Any:
        """The language model's: ``llm.generate`` is what generates, so fedray's pad/end-of-turn go there."""
        return getattr(self.llm, "generation_config", None)

    @generation_config.setter
    def generation_config(self, value: Any) -> None:
        if value is not None and "llm" in self._modules:
            self.llm.generation_config = value

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """Prompt + new token ids (B, T + new), like a Hugging Face image-text-to-text model's generate."""
        if args or "image_bound" in kwargs or "model_inputs" in kwargs:  # MiniCPM-V's own convention
            return super().generate(*args, **kwargs)
        return self._generate_hf(**kwargs)

    def _generate_hf(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     pixel_values: torch.Tensor | None = None, tgt_sizes: torch.Tensor | None = None,
                     image_token_mask: torch.Tensor | None = None, **generation_kwargs: Any) -> torch.Tensor:
        _require_minicpmv_code(self)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        data = minicpmv_data(input_ids, attention_mask, pixel_values, tgt_sizes, image_token_mask)
        embeds, _ = self.get_vllm_embedding(data)  # (B, T, D): text embeddings, image spans replaced
        new_tokens = self.llm.generate(inputs_embeds=embeds, attention_mask=attention_mask,
                                       **generation_kwargs)  # (B, new): embeds alone give no prompt ids
        return torch.cat([input_ids, new_tokens.to(input_ids.device)], dim=1)


def _require_minicpmv_code(model: Any) -> None:
    for name in ("get_vllm_embedding", "llm"):
        if not hasattr(model, name):
            raise ModelError(f"{type(model).__name__} has no {name!r}; fedray's MiniCPM-V adapter was "
                             f"written for MiniCPM-V 2.5/2.6 remote code (llm + vpm + resampler, "
                             f"get_vllm_embedding(data)). Is model.family=minicpmv right for this model?")


def minicpmv_data(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  pixel_values: torch.Tensor | None, tgt_sizes: torch.Tensor | None,
                  image_token_mask: torch.Tensor | None) -> dict[str, Any]:
    """MiniCPM-V's ``data`` dict from Hugging Face style tensors (see :class:`MiniCPMVHFInterface`)."""
    if image_token_mask is None:
        image_token_mask = torch.zeros_like(input_ids)
    bounds = [image_spans(row) for row in image_token_mask]  # per row: (n_i, 2) [start, end)
    counts = [len(b) for b in bounds]
    num_slices = 0 if pixel_values is None else pixel_values.shape[0]
    if sum(counts) != num_slices:
        raise ModelError(f"MiniCPM-V batch has {num_slices} image slices but {sum(counts)} image placeholder "
                         f"spans in its prompts; were the prompts truncated through an image (raise "
                         f"model.max_length)?")
    pixels: list[list[torch.Tensor]] = []
    sizes: list[torch.Tensor] = []
    cursor = 0
    for count in counts:
        grid = (tgt_sizes[cursor: cursor + count] if count else
                torch.zeros((0, 2), dtype=torch.long, device=input_ids.device))
        patch = 0 if pixel_values is None else pixel_values.shape[2]
        # Drop the collator's zero padding: slice k is (3, patch, h_k * w_k * patch).
        pixels.append([pixel_values[cursor + k][..., : int(h * w) * patch]
                       for k, (h, w) in enumerate(grid.tolist())])
        sizes.append(grid.to(torch.int32))
        cursor += count
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, T); left padding starts at 0
    return {"input_ids": input_ids, "pixel_values": pixels, "tgt_sizes": sizes, "image_bound": bounds,
            "position_ids": position_ids}


def image_spans(mask_row: torch.Tensor) -> torch.Tensor:
    """[start, end) of each run of non-zeros in a (T,) mask, as an (n, 2) long tensor."""
    flags = (mask_row != 0).long()
    edges = torch.diff(flags, prepend=flags.new_zeros(1), append=flags.new_zeros(1))  # (T + 1,)
    starts = (edges == 1).nonzero().flatten()
    ends = (edges == -1).nonzero().flatten()
    return torch.stack([starts, ends], dim=-1)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the token at t+1 given logits at t, over labels that are not ``-100``."""
    vocab = logits.shape[-1]
    shifted = logits[:, :-1].reshape(-1, vocab).float()  # (B*(T-1), V)
    targets = labels[:, 1:].reshape(-1).to(logits.device)  # (B*(T-1),)
    return torch.nn.functional.cross_entropy(shifted, targets, ignore_index=IGNORE_INDEX)


@cache
def _with_hf_interface(cls: type) -> type:
    # Same name and module as the model's own class: the model still reads as MiniCPMV everywhere.
    return type(cls.__name__, (MiniCPMVHFInterface, cls), {"__module__": cls.__module__,
                                                           "__doc__": cls.__doc__})


def adapt_minicpmv_model(model: Any) -> Any:
    """Give ``model`` the Hugging Face convention by re-classing it as a subclass of its own class.

    The subclass only adds methods (:class:`MiniCPMVHFInterface`), so the object, its weights and its module
    paths stay as loaded.
    """
    if not isinstance(model, MiniCPMVHFInterface):
        model.__class__ = _with_hf_interface(type(model))
    return model


ADAPTERS.register("minicpmv")(ModelAdapter(model=adapt_minicpmv_model, processor=MiniCPMVProcessorShim))
