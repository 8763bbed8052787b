"""LoRA wrapping and adapter state transfer.

The adapter state is what crosses process boundaries: LoRA matrices plus any ``modules_to_save``
copies, as CPU tensors keyed without the adapter name (PEFT's own key format, so it loads back with
``set_peft_model_state_dict``). Base weights never appear in it.
"""

from __future__ import annotations

from typing import Any

import torch

from fedray.config.schema import LoraConfig
from fedray.errors import ModelError
from fedray.models.families import lora_targets, modules_to_save

AdapterState = dict[str, torch.Tensor]


def apply_lora(model: Any, cfg: LoraConfig, family: str = "llava") -> Any:
    """Wrap ``model`` with a LoRA adapter; only adapter (and ``modules_to_save``) params train.

    Unset ``cfg.target_modules`` takes the preset of ``family`` (see :mod:`fedray.models.families`).
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_config = PeftLoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=lora_targets(cfg, family),
        modules_to_save=modules_to_save(cfg, family, model) or None,
        bias="none",
    )
    try:
        return get_peft_model(model, peft_config)
    except ValueError as exc:  # PEFT says "Target modules ... not found in the base model"
        names = sorted({n.rsplit(".", 1)[-1] for n, _ in model.named_modules() if n})[:40]
        raise ModelError(
            f"lora.target_modules={cfg.target_modules!r} / lora.modules_to_save="
            f"{list(cfg.modules_to_save)} do not match this model ({exc}). "
            f"Module names in this model include: {', '.join(names)}"
        ) from exc


def get_adapter_state(model: Any) -> AdapterState:
    """The adapter tensors as detached CPU copies (safe to ship and to mutate)."""

    state = _peft_state(model)
    return {key: tensor.detach().to("cpu", copy=True) for key, tensor in state.items()}


def set_adapter_state(model: Any, state: AdapterState) -> None:
    """Load ``state`` into ``model``; a key mismatch is an error rather than a silent partial load."""
    from peft import set_peft_model_state_dict

    expected = set(get_adapter_state_keys(model))
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ModelError(
            f"adapter state does not fit the model: missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]}; was it produced with the same lora settings?"
        )
    set_peft_model_state_dict(model, state)


def get_adapter_state_keys(model: Any) -> list[str]:
    return list(_peft_state(model).keys())


def _peft_state(model: Any) -> AdapterState:
    # save_embedding_layers=False: when LoRA targets an output head or embedding, PEFT would otherwise
    # add that layer's frozen base weight to the state, and base weights must never be shipped.
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model, save_embedding_layers=False)


def state_nbytes(state: AdapterState) -> int:
    """Bytes a state occupies on the wire (tensor payload only)."""
    return sum(t.numel() * t.element_size() for t in state.values())


def adapter_bytes_breakdown(model: Any) -> dict[str, int]:
    """Bytes of the adapter state by kind: ``lora`` (the low-rank matrices), ``modules_to_save`` (full copies
    of modules such as the projector, trained and aggregated whole) and their ``total``.

    A client uploads and downloads the whole state every round, so ``modules_to_save`` is often where most
    of the traffic goes: a LLaVA-1.5-7B projector is ~21 M params against ~4 M for rank-8 q/v LoRA.
    """
    from peft.utils import ModulesToSaveWrapper

    # State keys keep the module path (adapter name removed), so a key belongs to a saved module when it
    # lies under the path of one of the model's ModulesToSaveWrapper modules.
    saved = tuple(name + "." for name, module in model.named_modules()
                  if isinstance(module, ModulesToSaveWrapper))
    sizes = {"lora": 0, "modules_to_save": 0}
    for key, tensor in _peft_state(model).items():
        kind = "modules_to_save" if key.startswith(saved) else "lora"
        sizes[kind] += tensor.numel() * tensor.element_size()
    sizes["total"] = sizes["lora"] + sizes["modules_to_save"]
    return sizes


def adapter_parameters(model: Any) -> dict[str, torch.nn.Parameter]:
    """The trainable parameters keyed like the adapter state (adapter name and PEFT wrappers removed).

    A parameter ``...q_proj.lora_A.default.weight`` is state key ``...q_proj.lora_A.weight``;
    ``...projector.modules_to_save.default.linear_1.weight`` is ``...projector.linear_1.weight``.
    """
    named = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = name.replace(".modules_to_save.default.", ".").replace(".default.", ".")
            named[key] = param
    expected = set(get_adapter_state_keys(model))
    if set(named) != expected:
        raise ModelError(f"trainable parameters do not map onto the adapter state: unmatched "
                         f"{sorted(set(named) ^ expected)[:5]}")
    return named
