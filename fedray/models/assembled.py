"""``assembled``: a LLaVA-style VLM from real pretrained parts that ship in PyPI wheels (no download).

    image (S×S) → EfficientNet-Lite0 (ImageNet, frozen) → 1280×(S/32)² map → avg-pool to grid×grid
                → projector MLP (1280 → projector_hidden → LM width; trainable, seeded)
                → grid² image tokens in place of the placeholder tokens
                → SmolLM2-135M-Instruct (LlamaForCausalLM; LoRA on its attention)

The module exposes ``language_model``, ``vision_tower`` and ``multi_modal_projector`` so the "assembled"
family's LoRA presets (:mod:`fedray.models.families`) find them, and behaves like a Hugging Face model
where fedray and PEFT touch it: ``forward(...)`` returns the LM's output (``.loss``, ``.logits``),
``generate(...)`` returns prompt + new tokens, and ``config``/``generation_config`` exist.
Assets: :mod:`fedray.models.assets` (``make assets-real``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fedray.config.schema import AssembledConfig, ModelConfig
from fedray.errors import ModelError
from fedray.models.assembled_processor import AssembledProcessor
from fedray.models.base import MODEL_BUILDERS, BuiltModel, torch_dtype
from fedray.models.efficientnet_lite import FEATURE_CHANNELS, EfficientNetLite0, load_efficientnet_lite0
from fedray.seeding import torch_seeded


class Projector(nn.Module):
    """Image features → LM embeddings: ``linear_2(gelu(linear_1(x)))``, or one ``linear`` if hidden=0."""

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.hidden = hidden
        if hidden:
            self.linear_1 = nn.Linear(in_features, hidden)
            self.linear_2 = nn.Linear(hidden, out_features)
        else:
            self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x))) if self.hidden else self.linear(x)


@dataclass
class AssembledVlmConfig:
    """What PEFT and logging read from ``model.config`` (PEFT accepts a dataclass: ``asdict``).

    Not a ``transformers.PretrainedConfig``: this model is not saved or loaded through ``from_pretrained``
    (it is assembled from its parts on every build), and the v5 config base validates token ids against
    sub-configs in ways a composite of non-HF parts does not fit.
    """

    text_config: dict[str, Any]  # the language model's config, as a dict
    image_grid: int
    image_size: int
    projector_hidden: int
    image_token_id: int
    hidden_size: int
    model_type: str = "fedray_assembled"
    tie_word_embeddings: bool = False  # the LM ties its own head; nothing is tied at this level

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AssembledVlm(nn.Module):
    """Frozen vision tower + projector + causal LM; image placeholders are replaced by image tokens."""

    def __init__(self, vision_tower: EfficientNetLite0, projector: Projector, language_model: Any,
                 image_token_id: int, image_grid: int, image_size: int, projector_hidden: int) -> None:
        super().__init__()
        self.vision_tower = vision_tower
        self.multi_modal_projector = projector
        self.language_model = language_model
        self.image_token_id = image_token_id
        self.image_grid = image_grid
        self.config = AssembledVlmConfig(
            text_config=language_model.config.to_dict(), image_grid=image_grid, image_size=image_size,
            projector_hidden=projector_hidden, image_token_id=image_token_id,
            hidden_size=language_model.config.hidden_size)
        self.generation_config = language_model.generation_config
        for param in self.vision_tower.parameters():
            param.requires_grad_(False)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        # Non-reentrant checkpointing: the reentrant kind drops gradients when the checkpointed block's
        # inputs (frozen embeddings) do not require grad, which is always the case under LoRA.
        kwargs = gradient_checkpointing_kwargs or {"use_reentrant": False}
        self.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) → (N, grid², hidden) projected image tokens, row-major over the pooled grid."""
        features = self.vision_tower.features(pixel_values)  # (N, 1280, S/32, S/32)
        pooled = F.adaptive_avg_pool2d(features, self.image_grid)  # (N, 1280, g, g)
        return self.multi_modal_projector(pooled.flatten(2).transpose(1, 2))  # (N, g², hidden)

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings (B, T, hidden) with the placeholder positions holding image tokens in order."""
        embeds = self.get_input_embeddings()(input_ids)  # (B, T, hidden)
        slots = input_ids == self.image_token_id  # (B, T)
        n_slots = int(slots.sum())
        n_images = 0 if pixel_values is None else pixel_values.shape[0]
        per_image = self.image_grid ** 2
        if n_slots != n_images * per_image:
            raise ModelError(f"the batch has {n_slots} image placeholder tokens but {n_images} image(s) × "
                             f"{per_image} tokens each; build batches with the assembled processor")
        if n_images == 0:
            return embeds
        tokens = self.image_tokens(pixel_values).to(embeds.dtype)  # (N, g², hidden)
        # masked_scatter fills the True positions in row-major order, i.e. images in batch order.
        return embeds.masked_scatter(slots.unsqueeze(-1), tokens.reshape(-1, tokens.shape[-1]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **kwargs: Any) -> Any:
        """The LM's ``CausalLMOutputWithPast`` (``.loss`` when ``labels`` are given, ``.logits``)."""
        return self.language_model(inputs_embeds=self.embed(input_ids, pixel_values),
                                   attention_mask=attention_mask, labels=labels, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 pixel_values: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """(B, T + new) like a Hugging Face decoder: the (left-padded) prompt, then the generated tokens.

        The LM generates from embeddings, and then returns only the new tokens; the prompt ids are put
        back in front so callers can slice at the prompt length as with any decoder-only model.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        new = self.language_model.generate(inputs_embeds=self.embed(input_ids, pixel_values),
                                           attention_mask=attention_mask, **kwargs)
        return torch.cat([input_ids, new.to(input_ids.device)], dim=1)


def load_language_model(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """(tokenizer, causal LM) from a model directory or a .gguf file (dequantised on load, slower)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = {"pretrained_model_name_or_path": path.parent, "gguf_file": path.name} \
        if path.suffix == ".gguf" else {"pretrained_model_name_or_path": path}
    try:
        tokenizer = AutoTokenizer.from_pretrained(**location, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(**location, local_files_only=True, dtype=dtype)
    except ImportError as exc:  # transformers reads GGUF through the optional `gguf` package
        raise ModelError(f"loading {path.name} needs the `gguf` package: pip install -e '.[real]', or "
                         f"convert it once with `make assets-real` and use the directory ({exc})") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the language model from {str(path)!r}: {exc}") from exc
    if path.suffix == ".gguf":
        model.hf_quantizer = None  # weights are dequantised now; PEFT and saving must not see a quantizer
    return tokenizer, model


@MODEL_BUILDERS.register("assembled", params=AssembledConfig)
def build_assembled(cfg: ModelConfig) -> BuiltModel:
    """EfficientNet-Lite0 + seeded projector + SmolLM2 from ``cfg.assembled`` (see the module doc)."""
    # Imported here so that `python -m fedray.models.assets` does not find itself already imported.
    from fedray.models.assets import language_model_path, vision_weights_path

    settings = cfg.assembled
    dtype = torch_dtype(cfg.dtype)
    tokenizer, language_model = load_language_model(language_model_path(settings.language_model), dtype)
    vision = load_efficientnet_lite0(vision_weights_path(settings.vision_weights), num_classes=0)
    processor = AssembledProcessor(tokenizer, settings.image_size, settings.image_grid)
    with torch_seeded(settings.init_seed):  # every actor builds the identical projector
        projector = Projector(FEATURE_CHANNELS, settings.projector_hidden,
                              language_model.config.hidden_size)
    model = AssembledVlm(vision, projector, language_model, processor.image_token_id,
                         settings.image_grid, settings.image_size, settings.projector_hidden).to(dtype)
    model.eval()
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    generation = model.generation_config
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
            else tokenizer.eos_token_id
    return BuiltModel(model=model, processor=processor, family="assembled")
