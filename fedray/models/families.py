"""Per-family facts about image-text-to-text models: where LoRA goes, what the projector and the token
embeddings are called (what the ``fedmllm`` preset trains in full) and how the ``hf`` builder loads the
family.

A family is keyed by the model config's ``model_type`` (or ``model.family``). The LoRA presets are regexes
over full module paths, because a family's language model, vision tower and projector share layer names
(``q_proj`` appears in both towers) and only the path tells them apart. The paths below were read off models
built from config with transformers 5.24 (MiniCPM-V: off its released remote code), for example

- LLaVA:      ``model.language_model.layers.0.self_attn.q_proj``, ``model.vision_tower...self_attn.q_proj``,
              ``model.multi_modal_projector``
- Qwen2-VL:   ``model.language_model.layers.0.self_attn.q_proj``, ``model.visual.blocks.0.attn.qkv``,
              ``model.visual.merger`` (Qwen2.5-VL is laid out the same way)
- Idefics3:   ``model.text_model.layers.0.self_attn.q_proj``, ``model.vision_model.encoder.layers.0.self_attn
              .q_proj``, ``model.connector`` (SmolVLM is the Idefics3 architecture under its own model_type)
- MiniCPM-V:  ``llm.model.layers.0.self_attn.q_proj``, ``vpm.encoder.layers.0.self_attn.q_proj``,
              ``resampler``
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from fedray.config.schema import LoraConfig
from fedray.errors import ModelError
from fedray.registry import Registry


@dataclass(frozen=True)
class Family:
    """Module paths of one model family, as regex fragments, and how the family is loaded."""

    language_model: str  # prefix of the language model's decoder layers
    attention: tuple[str, ...]  # attention projections of the language model
    mlp: tuple[str, ...]  # MLP projections of the language model
    vision_tower: str  # prefix of the vision encoder's attention modules
    vision_attention: tuple[str, ...]
    projector: str  # the vision-language projector's module name (modules_to_save)
    embeddings: str = "embed_tokens"  # the language model's token embedding table (modules_to_save)
    # How fedray.models.hf loads it: "image_text_to_text" (AutoModelForImageTextToText + AutoProcessor) or
    # "remote_code" (the model directory's own code, through AutoModel with trust_remote_code).
    loader: str = "image_text_to_text"

    @property
    def layer_pattern(self) -> re.Pattern:
        """Matches a parameter of the language model's decoder layer N (group 1), under any wrapper
        prefix (PEFT's ``base_model.model.``, a ``model.`` container) and with or without the decoder's
        own ``model.`` level (``llm.model.layers.3.``, ``text_model.layers.3.``)."""
        return re.compile(rf"(?:^|\.){self.language_model}\.(?:model\.)?layers\.(\d+)\.")


FAMILIES: Registry[Family] = Registry("model family")


@dataclass(frozen=True)
class ModelAdapter:
    """What the ``hf`` builder applies to a freshly loaded model and its processor, for a family whose own
    code does not speak the Hugging Face convention (MiniCPM-V: :mod:`fedray.models.minicpmv`)."""

    model: Callable[[Any], Any]
    processor: Callable[[Any], Any]


ADAPTERS: Registry[ModelAdapter] = Registry("model adapter")

_LLAMA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_LLAMA_MLP = ("gate_proj", "up_proj", "down_proj")
_CLIP_ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")  # CLIP and SigLIP encoders alike

FAMILIES.register("llava")(Family(
    language_model=r"language_model", attention=_LLAMA_ATTENTION, mlp=_LLAMA_MLP,
    vision_tower=r"vision_tower", vision_attention=_CLIP_ATTENTION, projector="multi_modal_projector",
))

# The Qwen vision blocks fuse q/k/v into one ``qkv`` Linear. The prefix stops at ``attn`` so that neither the
# patch embedding's Conv3d (``visual.patch_embed.proj``) nor the merger's MLP is matched.
_QWEN_VL = Family(
    language_model=r"language_model", attention=_LLAMA_ATTENTION, mlp=_LLAMA_MLP,
    vision_tower=r"visual\.blocks\.\d+\.attn", vision_attention=("qkv", "proj"), projector="visual.merger",
)
FAMILIES.register("qwen2_vl")(_QWEN_VL)
FAMILIES.register("qwen2_5_vl")(_QWEN_VL)

_IDEFICS3 = Family(
    language_model=r"text_model", attention=_LLAMA_ATTENTION, mlp=_LLAMA_MLP,
    vision_tower=r"vision_model\.encoder", vision_attention=_CLIP_ATTENTION, projector="connector",
)
FAMILIES.register("idefics3")(_IDEFICS3)
FAMILIES.register("smolvlm")(_IDEFICS3)

# MiniCPM-V 2.5/2.6 (SigLIP ``vpm`` + perceiver ``resampler`` + Llama-3/Qwen2 ``llm``) exists only as remote
# code; AutoModelForImageTextToText does not know it.
FAMILIES.register("minicpmv")(Family(
    language_model=r"llm", attention=_LLAMA_ATTENTION, mlp=_LLAMA_MLP,
    vision_tower=r"vpm\.encoder", vision_attention=_CLIP_ATTENTION, projector="resampler",
    loader="remote_code",
))

# fedray.models.assembled (built by its own builder, not by hf): SmolLM2 at
# ``language_model.model.layers.0.self_attn.q_proj``, EfficientNet-Lite0 at ``vision_tower.blocks.0...``,
# ``multi_modal_projector``. EfficientNet has no attention; with lora.vision its 1x1 expand/project
# convolutions take LoRA instead.
FAMILIES.register("assembled")(Family(
    language_model=r"language_model", attention=_LLAMA_ATTENTION, mlp=_LLAMA_MLP,
    vision_tower=r"vision_tower", vision_attention=("expand_conv", "project_conv"),
    projector="multi_modal_projector",
))


def lora_targets(cfg: LoraConfig, family: str) -> str:
    """The regex of modules that receive LoRA: ``cfg.target_modules``, else the family's preset."""
    if cfg.target_modules is not None:
        return cfg.target_modules
    fam = FAMILIES.get(family)
    if cfg.preset == "fedmllm":
        parts = [fedmllm_targets(fam)]
    else:
        language = fam.attention + (fam.mlp if cfg.preset == "attention_mlp" else ())
        parts = [rf".*{fam.language_model}.*\.({'|'.join(language)})"]
    if cfg.vision:
        parts.append(rf".*{fam.vision_tower}.*\.({'|'.join(fam.vision_attention)})")
    return parts[0] if len(parts) == 1 else "(" + "|".join(parts) + ")"


def fedmllm_targets(fam: Family) -> str:
    r"""The FedMLLM reference's LoRA targets for any family: q/k/v/o of every decoder layer's ``self_attn``.

    On MiniCPM-V this selects exactly what the reference's script passes to PEFT,
    ``llm\..*layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)`` (matched in full against module
    paths); the optional leading group admits a family's container prefix (``model.language_model...``).
    """
    return rf"(?:.*\.)?{fam.language_model}\..*layers\.\d+\.self_attn\.({'|'.join(fam.attention)})"


def modules_to_save(cfg: LoraConfig, family: str, model: Any = None) -> list[str]:
    """Modules trained in full and aggregated with the adapter, as names PEFT matches by path suffix.

    In order: the family's token embeddings and projector under ``preset: fedmllm`` (the reference saves
    ``embed_tokens`` and ``resampler``), ``cfg.modules_to_save``, the projector when
    ``cfg.train_projector``, and the full paths of the modules ``cfg.trainable`` selects in ``model``
    (which must then be given); each once.
    """
    fam = FAMILIES.get(family)
    names = [fam.embeddings, fam.projector] if cfg.preset == "fedmllm" and cfg.target_modules is None else []
    names += list(cfg.modules_to_save)
    if cfg.train_projector:
        names.append(fam.projector)
    if cfg.trainable:
        if model is None:
            raise ModelError("lora.trainable is set but no model was given to resolve its patterns "
                             "against; pass the model to fedray.models.families.modules_to_save")
        names += trainable_modules(model, cfg.trainable)
    return list(dict.fromkeys(names))


def trainable_modules(model: Any, patterns: Sequence[str]) -> list[str]:
    """Full paths of the outermost modules of ``model`` whose path fully matches one of ``patterns``.

    Outermost only: PEFT cannot wrap a module inside one it already trains in full, and the outer copy
    trains the inner one anyway. A pattern that matches no module is an error naming some of the paths.
    """
    paths = [name for name, _ in model.named_modules() if name]
    compiled = [re.compile(p) for p in patterns]
    unmatched = [p.pattern for p in compiled if not any(p.fullmatch(path) for path in paths)]
    if unmatched:
        raise ModelError(f"lora.trainable pattern(s) {unmatched} match no module path of this model; paths "
                         f"include: {', '.join(_sample_paths(paths))}")
    chosen: list[str] = []
    for path in paths:  # named_modules lists a parent before its children
        if any(p.fullmatch(path) for p in compiled) and not any(path.startswith(c + ".") for c in chosen):
            chosen.append(path)
    return chosen


def _sample_paths(paths: Sequence[str], limit: int = 12) -> list[str]:
    """A few paths from the top of the tree (at most two levels deep), to show what names look like."""
    shallow = [p for p in paths if p.count(".") <= 1]
    return (shallow or list(paths))[:limit]
