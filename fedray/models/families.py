"""Per-family facts about image-text-to-text models: where LoRA goes and what the projector is called.

A family is keyed by the model config's ``model_type`` (or ``model.family``). The LoRA presets are regexes
over full module paths, because a family's language model, vision tower and projector share layer names
(``q_proj`` appears in both towers) and only the path tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedray.config.schema import LoraConfig
from fedray.registry import Registry


@dataclass(frozen=True)
class Family:
    """Module paths of one model family, as regex fragments."""

    language_model: str  # prefix of the language model's decoder layers
    attention: tuple[str, ...]  # attention projections of the language model
    mlp: tuple[str, ...]  # MLP projections of the language model
    vision_tower: str  # prefix of the vision encoder's layers
    vision_attention: tuple[str, ...]
    projector: str  # the vision-language projector's module name (modules_to_save)


FAMILIES: Registry[Family] = Registry("model family")

FAMILIES.register("llava")(Family(
    language_model=r"language_model", attention=("q_proj", "k_proj", "v_proj", "o_proj"),
    mlp=("gate_proj", "up_proj", "down_proj"), vision_tower=r"vision_tower",
    vision_attention=("q_proj", "k_proj", "v_proj", "out_proj"), projector="multi_modal_projector",
))


def lora_targets(cfg: LoraConfig, family: str) -> str:
    """The regex of modules that receive LoRA: ``cfg.target_modules``, else the family's preset."""
    if cfg.target_modules is not None:
        return cfg.target_modules
    fam = FAMILIES.get(family)
    language = fam.attention + (fam.mlp if cfg.preset == "attention_mlp" else ())
    parts = [rf".*{fam.language_model}.*\.({'|'.join(language)})"]
    if cfg.vision:
        parts.append(rf".*{fam.vision_tower}.*\.({'|'.join(fam.vision_attention)})")
    return parts[0] if len(parts) == 1 else "(" + "|".join(parts) + ")"


def modules_to_save(cfg: LoraConfig, family: str) -> list[str]:
    """``cfg.modules_to_save`` plus the family's projector when ``cfg.train_projector``."""
    names = list(cfg.modules_to_save)
    if cfg.train_projector and FAMILIES.get(family).projector not in names:
        names.append(FAMILIES.get(family).projector)
    return names
