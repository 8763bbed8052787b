"""``hf``: a Hugging Face image-text-to-text model from a local directory or the local cache (no download).

``model.path`` is a directory saved with ``save_pretrained`` or a model id (``org/name``) already in the
local Hugging Face cache; everything loads with ``local_files_only=True``. The family (``model.family``, else
the config's ``model_type``) picks the loader and the LoRA presets (see :mod:`fedray.models.families`):
LLaVA, Qwen2-VL, Qwen2.5-VL, Idefics3 and SmolVLM load with ``AutoModelForImageTextToText``; MiniCPM-V only
through its own code in the model directory (``model.trust_remote_code=true``). A family registered in
:data:`fedray.models.families.ADAPTERS` (MiniCPM-V: :mod:`fedray.models.minicpmv`) then gets its adapter,
which makes its model and processor speak the Hugging Face convention the collator, training and evaluation
code use.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Callable

from fedray.config.schema import ModelConfig
from fedray.errors import ModelError
from fedray.models.base import MODEL_BUILDERS, BuiltModel, torch_dtype
from fedray.models.families import ADAPTERS, FAMILIES, Family
from fedray.models.hub_cache import cached_snapshot, looks_like_repo_id
from fedray.models.memory import prepare_for_training, quantization_kwargs
from fedray.registry import Registry

logger = logging.getLogger(__name__)

# A loader turns (directory, config, from_pretrained kwargs) into (model, processor).
Loader = Callable[[Path, ModelConfig, dict[str, Any]], tuple[Any, Any]]
LOADERS: Registry[Loader] = Registry("model loader")

def resolve_model_path(path: str | None) -> Path:
    """The model directory ``path`` names: itself, or its snapshot in the local Hugging Face cache."""
    if not path:
        raise ModelError("model.name=hf needs model.path: a saved Hugging Face image-text-to-text model "
                         "directory (e.g. model.path=/models/llava-tiny) or a model id already in the local "
                         "Hugging Face cache (e.g. model.path=llava-hf/llava-1.5-7b-hf)")
    directory = Path(path).expanduser()
    if directory.is_dir():
        return check_model_dir(directory, path)
    if not looks_like_repo_id(path):
        raise ModelError(f"model.path={path!r} does not exist or is not a directory; point it at a model "
                         f"saved with save_pretrained (config.json + weights + processor files)")
    return check_model_dir(Path(cached_snapshot(path)), path)


def check_model_dir(directory: Path, path: str | None = None) -> Path:
    """``directory`` if it holds a config.json, else a :class:`ModelError` saying what is missing."""
    if not (directory / "config.json").is_file():
        raise ModelError(f"model.path={path or str(directory)!r} has no config.json; is it a Hugging Face "
                         f"model directory?")
    return directory


def resolve_family(cfg: ModelConfig, directory: Path) -> tuple[str, Family]:
    """``cfg.family``, else the ``model_type`` in ``directory``'s config.json, and its :class:`Family`."""
    name = cfg.family or json.loads((directory / "config.json").read_text()).get("model_type")
    if name is None or name not in FAMILIES:
        where = "model.family" if cfg.family else f"model_type in {directory / 'config.json'}"
        raise ModelError(f"unknown model family {name!r} ({where}); fedray knows "
                         f"{', '.join(FAMILIES.names())}. If the model is one of these under another "
                         f"model_type, set model.family to it")
    return name.lower(), FAMILIES.get(name)


@MODEL_BUILDERS.register("hf")
def build_hf(cfg: ModelConfig) -> BuiltModel:
    """Load a saved image-text-to-text model and its processor from ``cfg.path``."""
    directory = resolve_model_path(cfg.path)
    name, family = resolve_family(cfg, directory)
    kwargs = {"local_files_only": True, "dtype": torch_dtype(cfg.dtype),
              **quantization_kwargs(cfg, skip_modules=[family.projector, "lm_head"])}
    try:
        model, processor = LOADERS.get(family.loader)(directory, cfg, kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load model.path={cfg.path!r} ({directory}) as a {name} model: "
                         f"{exc}") from exc
    if name in ADAPTERS:
        adapter = ADAPTERS.get(name)
        model, processor = adapter.model(model), adapter.processor(processor)
    model = prepare_for_training(model, cfg)
    _set_special_tokens(model, processor.tokenizer)
    return BuiltModel(model=model, processor=processor, family=name)


@LOADERS.register("image_text_to_text")
def _load_image_text_to_text(directory: Path, cfg: ModelConfig, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText

    trust = {"trust_remote_code": cfg.trust_remote_code}
    processor = load_processor(directory, **trust)
    model = AutoModelForImageTextToText.from_pretrained(directory, **kwargs, **trust)
    return model, processor


@LOADERS.register("remote_code")
def _load_remote_code(directory: Path, cfg: ModelConfig, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """Families that exist only as code shipped with the checkpoint (MiniCPM-V): ``AutoModel`` + that code."""
    from transformers import AutoModel

    config = json.loads((directory / "config.json").read_text())
    code = sorted({ref.split(".")[0] + ".py" for ref in _auto_map_refs(config)})
    if not code:
        raise ModelError(f"{directory / 'config.json'} has no auto_map: this family loads only through the "
                         f"model's own code (modeling_*.py next to config.json), which this directory lacks; "
                         f"use the original checkpoint directory")
    missing = [name for name in code if not (directory / name).is_file()]
    if missing:
        raise ModelError(f"the model code {missing} named in {directory / 'config.json'} (auto_map) is not "
                         f"in the model directory; copy the checkpoint's *.py files next to config.json")
    if not cfg.trust_remote_code:
        raise ModelError(f"{directory} loads only through its own code ({', '.join(code)}); read it, then "
                         f"set model.trust_remote_code=true to run it")
    processor = load_processor(directory, trust_remote_code=True)
    model = AutoModel.from_pretrained(directory, trust_remote_code=True, **kwargs)
    return model, processor


def _auto_map_refs(config: dict[str, Any]) -> list[str]:
    # auto_map values are "module.Class" or "repo--module.Class", or a [slow, fast] pair for tokenizers.
    refs = []
    for value in config.get("auto_map", {}).values():
        for ref in value if isinstance(value, list) else [value]:
            if ref:
                refs.append(ref.split("--")[-1])
    return refs


def load_processor(directory: Path, trust_remote_code: bool = False) -> Any:
    """``AutoProcessor`` from ``directory``; image-only where the video half cannot load (see below)."""
    from transformers import AutoProcessor

    cls = _processor_class(directory)
    if cls is not None and "video_processor" in cls.get_attributes() and not has_torchvision():
        # transformers 5.24's video processors need torchvision, and a processor with a video half (Qwen2-VL,
        # Qwen2.5-VL, SmolVLM) will not even construct without one. fedray feeds no video, so load the same
        # class without it: text and image handling are unchanged.
        logger.info("torchvision is not installed: loading %s without its video processor", cls.__name__)
        return without_video(cls).from_pretrained(directory, local_files_only=True)
    return AutoProcessor.from_pretrained(directory, local_files_only=True,
                                         trust_remote_code=trust_remote_code)


def _processor_class(directory: Path) -> type | None:
    """The transformers processor class ``directory`` declares (None if not a built-in one)."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = None
    for filename in ("processor_config.json", "preprocessor_config.json"):
        if (directory / filename).is_file():
            name = name or json.loads((directory / filename).read_text()).get("processor_class")
    if name is None:
        model_type = json.loads((directory / "config.json").read_text()).get("model_type")
        name = PROCESSOR_MAPPING_NAMES.get(model_type)
    return getattr(transformers, name, None) if isinstance(name, str) else None


def has_torchvision() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def without_video(cls: type) -> type:
    """A subclass of processor class ``cls`` with only two sub-processors: image processor and tokenizer."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        cls.__init__(self, image_processor=image_processor, tokenizer=tokenizer,
                     chat_template=chat_template, **kwargs)

    # ProcessorMixin reads the sub-processors off __init__'s signature, so this one loads no video processor.
    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": __name__, "__doc__": cls.__doc__})


def _set_special_tokens(model: Any, tokenizer: Any) -> None:
    """Generation needs a pad token (batches are left-padded) and should stop at the end of a turn."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # left-padded and masked out, so its identity is moot
    generation = getattr(model, "generation_config", None)
    if generation is None:
        return
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    if generation.eos_token_id is None and tokenizer.eos_token_id is not None:
        generation.eos_token_id = tokenizer.eos_token_id
