"""Memory settings shared by the model builders: 4-bit base weights (QLoRA) and gradient checkpointing.

Both only change how the frozen base model is stored or how activations are kept; the LoRA adapter, its
state and its aggregation are the same with or without them.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable, Sequence

import torch

from fedray.config.schema import ModelConfig
from fedray.errors import ModelError
from fedray.models.base import torch_dtype


def _no_quantization(cfg: ModelConfig, skip_modules: Sequence[str]) -> dict[str, Any]:
    return {}


def _nf4(cfg: ModelConfig, skip_modules: Sequence[str]) -> dict[str, Any]:
    require_4bit_support()
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,  # QLoRA's double quantization: ~0.4 bit/param saved on the scales
        bnb_4bit_compute_dtype=torch_dtype(cfg.dtype),
        # Modules trained in full (the projector) or producing logits must keep real weights: a 4-bit
        # Linear can carry LoRA but cannot itself be trained or averaged.
        llm_int8_skip_modules=list(skip_modules),
    )
    # bitsandbytes quantizes while loading onto the GPU, so the weights must be placed there directly.
    return {"quantization_config": quantization, "device_map": {"": torch.cuda.current_device()}}


QUANTIZATIONS: dict[str, Callable[[ModelConfig, Sequence[str]], dict[str, Any]]] = {
    "none": _no_quantization,
    "4bit": _nf4,
}


def quantization_kwargs(cfg: ModelConfig, skip_modules: Sequence[str] = ()) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments for ``cfg.quantization`` (``{}`` for ``none``)."""
    if cfg.quantization not in QUANTIZATIONS:
        raise ModelError(f"model.quantization={cfg.quantization!r} is not supported; use one of "
                         f"{', '.join(QUANTIZATIONS)}")
    return QUANTIZATIONS[cfg.quantization](cfg, skip_modules)


def require_4bit_support() -> None:
    """Raise a :class:`ModelError` unless bitsandbytes is installed and torch sees a CUDA device."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("model.quantization=4bit needs the bitsandbytes package, which is not installed; "
                         "install it on the GPU machines (pip install bitsandbytes) or set "
                         "model.quantization=none")
    if not torch.cuda.is_available():
        raise ModelError("model.quantization=4bit needs a CUDA GPU that torch can see (bitsandbytes' NF4 "
                         "kernels run on GPU only), but torch.cuda.is_available() is False here; give the "
                         "client actors a GPU (resources) or set model.quantization=none")


def prepare_for_training(model: Any, cfg: ModelConfig) -> Any:
    """Apply ``cfg``'s memory settings to a freshly loaded base model (before LoRA is attached)."""
    if cfg.quantization != "none":
        from peft import prepare_model_for_kbit_training

        # Freezes the base and upcasts its non-quantized half-precision weights (norms, embeddings, the
        # skipped projector) to float32 for stable training; checkpointing is ours to enable below.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    apply_gradient_checkpointing(model, cfg)
    return model


def apply_gradient_checkpointing(model: Any, cfg: ModelConfig) -> None:
    """Enable gradient checkpointing on ``model`` when ``cfg.gradient_checkpointing`` asks for it."""
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute each layer's activations during backward instead of keeping them.

    Non-reentrant checkpointing (``use_reentrant=False``) passes gradients through a checkpointed block even
    when none of its inputs requires grad, which is the normal case under LoRA (the embeddings are
    frozen). Input grads are enabled as well, so that code which still checkpoints reentrantly (some remote
    model code, DeepSpeed's activation checkpointing) also lets the LoRA weights inside it train.
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ModelError(f"{type(model).__name__} does not support gradient checkpointing; set "
                         f"model.gradient_checkpointing=false")
    kwargs = {"use_reentrant": False}
    # activation_checkpointing_enable is the transformers 5.24 name; the old one is a deprecated alias.
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # remote code on an older base class
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.enable_input_require_grads()
