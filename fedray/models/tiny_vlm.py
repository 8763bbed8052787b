"""``tiny-vlm``: a LLaVA-style model (tiny CLIP vision tower + projector + tiny Llama) built from config.

Nothing is downloaded: weights are initialised from ``model.tiny.init_seed`` (the same on every actor, so
every client shares one base model), the tokenizer is the built-in byte-level BPE and the image processor
is CLIP's PIL implementation. :func:`save_tiny_vlm` writes it as a regular Hugging Face model directory
that the ``hf`` builder loads.

``model.tiny.vision`` chooses the eye (the :data:`TINY_VISION` registry): ``clip``, the random tower
above, or ``efficientnet_lite0``, a frozen pretrained ImageNet encoder before the same tiny Llama
(:mod:`fedray.models.tiny_eye`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from fedray.config.schema import ModelConfig, TinyVlmConfig
from fedray.models.base import MODEL_BUILDERS, BuiltModel, torch_dtype
from fedray.models.memory import apply_gradient_checkpointing
from fedray.models.tokenizer import CHAT_TEMPLATE, build_tiny_tokenizer
from fedray.registry import Registry
from fedray.seeding import torch_seeded


def _processor(tiny: TinyVlmConfig):
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    size = tiny.image_size
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=build_tiny_tokenizer(tiny.vocab_size),
        patch_size=tiny.patch_size,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
        chat_template=CHAT_TEMPLATE,
    )


def _llava_config(tiny: TinyVlmConfig, tokenizer):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=tiny.vision_hidden_size,
        intermediate_size=2 * tiny.vision_hidden_size,
        num_hidden_layers=tiny.vision_layers,
        num_attention_heads=tiny.vision_heads,
        image_size=tiny.image_size,
        patch_size=tiny.patch_size,
    )
    text = LlamaConfig(
        hidden_size=tiny.text_hidden_size,
        intermediate_size=2 * tiny.text_hidden_size,
        num_hidden_layers=tiny.text_layers,
        num_attention_heads=tiny.text_heads,
        num_key_value_heads=tiny.text_kv_heads,
        vocab_size=len(tokenizer),
        max_position_embeddings=tiny.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        pad_token_id=tokenizer.pad_token_id,
    )


@MODEL_BUILDERS.register("tiny-vlm", params=TinyVlmConfig)
def build_tiny_vlm(cfg: ModelConfig) -> BuiltModel:
    """Build the tiny model from ``cfg.tiny`` with the eye ``cfg.tiny.vision`` names; identical weights for
    identical config."""
    return TINY_VISION.get(cfg.tiny.vision)(cfg)


def build_tiny_llava(cfg: ModelConfig) -> BuiltModel:
    """The tiny LLaVA: a random, frozen CLIP tower (the default; nothing to fetch)."""
    from transformers import LlavaForConditionalGeneration

    processor = _processor(cfg.tiny)
    config = _llava_config(cfg.tiny, processor.tokenizer)
    with torch_seeded(cfg.tiny.init_seed):
        model = LlavaForConditionalGeneration(config)
    model = model.to(torch_dtype(cfg.dtype))
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    apply_gradient_checkpointing(model, cfg)
    return BuiltModel(model=model, processor=processor, family="llava")


#: The tiny model's eyes by ``model.tiny.vision``.
TINY_VISION: Registry[Callable[[ModelConfig], BuiltModel]] = Registry("tiny-vlm vision")
TINY_VISION.register("clip")(build_tiny_llava)


@TINY_VISION.register("efficientnet_lite0")
def _build_tiny_eye(cfg: ModelConfig) -> BuiltModel:
    # Imported on use: `python -m fedray.models.tiny_eye` must not find itself imported by the package.
    from fedray.models.tiny_eye import build_tiny_eye

    return build_tiny_eye(cfg)


def save_tiny_vlm(cfg: ModelConfig, directory: str | Path) -> Path:
    """Write the tiny LLaVA (``vision: clip``) and its processor as a Hugging Face model directory."""
    built = build_tiny_llava(cfg)
    directory = Path(directory)
    built.model.save_pretrained(directory)
    built.processor.save_pretrained(directory)
    return directory
