"""The processor alone, without the model: what renders prompts where no model is needed.

``fedray data show`` renders each sample through the scenario's chat template, which lives in the
processor. Builders whose models are expensive to load register a processor-only path here (``hf``:
gigabytes of weights; ``assembled``: a language model); the rest (``tiny-vlm``, built from config in well
under a second) fall back to building the whole model and keeping its processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from fedray.config.schema import ModelConfig
from fedray.errors import ModelError
from fedray.models.base import build_model
from fedray.models.families import ADAPTERS
from fedray.registry import Registry

PROCESSOR_BUILDERS: Registry[Callable[[ModelConfig], Any]] = Registry("processor builder")


def build_processor(cfg: ModelConfig) -> Any:
    """The processor ``cfg``'s builder would return, built without the model where the builder allows."""
    if cfg.name in PROCESSOR_BUILDERS:
        return PROCESSOR_BUILDERS.get(cfg.name)(cfg)
    return build_model(cfg).processor


@PROCESSOR_BUILDERS.register("hf")
def hf_processor(cfg: ModelConfig) -> Any:
    """The saved processor of ``model.path``, behind its family's adapter (MiniCPM-V's shim) if any."""
    from fedray.models.hf import load_processor, resolve_family, resolve_model_path

    directory = resolve_model_path(cfg.path)
    name, _ = resolve_family(cfg, directory)
    try:
        processor = load_processor(directory, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the processor of model.path={cfg.path!r} ({directory}): {exc}; a "
                         "model that ships its own code needs model.trust_remote_code=true") from exc
    return ADAPTERS.get(name).processor(processor) if name in ADAPTERS else processor


@PROCESSOR_BUILDERS.register("assembled")
def assembled_processor(cfg: ModelConfig) -> Any:
    """The language model's tokenizer in the assembled processor (image tokens, chat template)."""
    from transformers import AutoTokenizer

    from fedray.models.assembled_processor import AssembledProcessor
    from fedray.models.assets import language_model_path

    settings = cfg.assembled
    path = Path(language_model_path(settings.language_model))
    location = {"pretrained_model_name_or_path": path.parent, "gguf_file": path.name} \
        if path.suffix == ".gguf" else {"pretrained_model_name_or_path": path}
    try:
        tokenizer = AutoTokenizer.from_pretrained(**location, local_files_only=True)
    except (OSError, ValueError, ImportError) as exc:
        raise ModelError(f"cannot load the tokenizer of {str(path)!r}: {exc}") from exc
    return AssembledProcessor(tokenizer, settings.image_size, settings.image_grid)
