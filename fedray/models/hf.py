"""``hf``: a local Hugging Face image-text-to-text model directory (no download).

Loads ``model.path`` with ``AutoModelForImageTextToText`` and ``AutoProcessor`` with
``local_files_only=True``; the directory must hold the weights, the config and the processor files.
"""

from __future__ import annotations

from pathlib import Path

from fedray.config.schema import ModelConfig
from fedray.errors import ModelError
from fedray.models.base import MODEL_BUILDERS, BuiltModel, torch_dtype


def check_model_dir(path: str | None) -> Path:
    """The model directory, or a :class:`ModelError` saying what is missing and how to fix it."""
    if not path:
        raise ModelError("model.name=hf needs model.path: the directory of a saved Hugging Face "
                         "image-text-to-text model (e.g. model.path=/models/llava-tiny)")
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ModelError(f"model.path={path!r} does not exist or is not a directory; point it at a "
                         f"model saved with save_pretrained (config.json + weights + processor files)")
    if not (directory / "config.json").is_file():
        raise ModelError(f"model.path={path!r} has no config.json; is it a Hugging Face model directory?")
    return directory


@MODEL_BUILDERS.register("hf")
def build_hf(cfg: ModelConfig) -> BuiltModel:
    """Load a saved image-text-to-text model and its processor from ``cfg.path``."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    directory = check_model_dir(cfg.path)
    try:
        processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(
            directory, local_files_only=True, dtype=torch_dtype(cfg.dtype))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model.path={str(directory)!r} as an image-text-to-text model: "
                         f"{exc}") from exc
    tokenizer = processor.tokenizer
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    return BuiltModel(model=model, processor=processor, family=model.config.model_type)
