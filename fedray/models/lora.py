"""LoRA wrapping and adapter state transfer.

The adapter state is what crosses process boundaries: LoRA matrices plus any ``modules_to_save``
copies, as CPU tensors keyed without the adapter name (PEFT's own key format, so it loads back with
``set_peft_model_state_dict``). Base weights never appear in it. It is read out of a model as one
:class:`~fedray.flat.FlatState` buffer and loaded back by in-place copies into the model's own tensors
(:class:`AdapterSlots`, found once per model).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from fedray.config.schema import LoraConfig
from fedray.errors import ModelError
from fedray.flat import FlatState, Layout
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


def peft_adapter_config(model: Any) -> dict[str, Any]:
    """The LoRA-wrapped ``model``'s PEFT config as the dict PEFT writes to ``adapter_config.json``.

    Taken from the built model rather than from the scenario, so that it is what PEFT actually applied:
    the resolved target-module regex of the family preset and the full paths ``lora.trainable`` chose,
    all under ``modules_to_save``. ``inference_mode`` is set, as PEFT does on save. Plain JSON types
    only (it travels to the aggregator, which imports no peft).
    """
    import json

    config = model.peft_config["default"].to_dict()
    config["inference_mode"] = True
    config = {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}
    return json.loads(json.dumps(config))  # PeftType (a str enum) → str, tuples → lists


def get_adapter_state(model: Any) -> FlatState:
    """The adapter tensors as one fresh CPU buffer (a read-only mapping of views; safe to ship, and the
    copy is the caller's: the model's own tensors are never handed out)."""
    return adapter_slots(model).read()


def set_adapter_state(model: Any, state: Mapping[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model`` in place; a key mismatch is an error, not a silent partial load."""
    adapter_slots(model).load(state)


class AdapterSlots:
    """Where each adapter tensor lives in one model, found once, so that loading and reading an adapter
    are in-place copies instead of PEFT's state-dict walk over every module of the model.

    A slot is kept as (owning module, attribute name), not as a tensor, and looked up on every copy:
    the DeepSpeed trainer replaces a ZeRO-3 model's parameter objects when it unwraps it after a fit.
    On an accelerator the whole buffer moves in one host-device copy and is split there.
    """

    def __init__(self, model: Any) -> None:
        state = _peft_state(model)  # tensors sharing storage with the model's params and buffers
        self.layout = Layout.of(state)
        owners = _owners(model)
        self.targets: list[tuple[Any, str]] = []
        for key, tensor in state.items():
            name = owners.get((tensor.data_ptr(), tuple(tensor.shape), tensor.dtype))
            if name is None:
                raise ModelError(f"adapter tensor {key} is not a parameter or buffer of the model; "
                                 "fedray cannot load adapters into it in place")
            path, _, leaf = name.rpartition(".")
            self.targets.append((model.get_submodule(path), leaf))

    def _tensors(self) -> list[torch.Tensor]:
        return [getattr(module, leaf) for module, leaf in self.targets]

    def load(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copy ``state`` into the model's adapter tensors."""
        self._check_keys(state)
        tensors = self._tensors()
        device = tensors[0].device if tensors else torch.device("cpu")
        if isinstance(state, FlatState) and device.type != "cpu":
            state = state.on(device)  # one host-to-device copy, split on the device
        with torch.no_grad():
            for slot, tensor in zip(self.layout.slots, tensors):
                tensor.copy_(state[slot.key])

    def read(self) -> FlatState:
        """The adapter tensors copied into one fresh CPU buffer."""
        out = FlatState.empty(self.layout)
        with torch.no_grad():
            for slot, tensor in zip(self.layout.slots, self._tensors()):
                out[slot.key].copy_(tensor)
        return out

    def _check_keys(self, state: Mapping[str, torch.Tensor]) -> None:
        if isinstance(state, FlatState) and state.layout == self.layout:
            return
        expected = set(self.layout.keys)
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ModelError(
                f"adapter state does not fit the model: missing {sorted(missing)[:5]}, unexpected "
                f"{sorted(unexpected)[:5]}; was it produced with the same lora settings?"
            )


def adapter_slots(model: Any) -> AdapterSlots:
    """The model's :class:`AdapterSlots`, found on first use and kept on the model."""
    slots = model.__dict__.get("_fedray_adapter_slots")
    if slots is None:
        slots = AdapterSlots(model)
        model.__dict__["_fedray_adapter_slots"] = slots
    return slots


def _owners(model: Any) -> dict[tuple[int, tuple[int, ...], torch.dtype], str]:
    """(storage address, shape, dtype) → the full name of the parameter or buffer holding it."""
    owners: dict[tuple[int, tuple[int, ...], torch.dtype], str] = {}
    named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    for name, tensor in named:
        owners.setdefault((tensor.data_ptr(), tuple(tensor.shape), tensor.dtype), name)
    return owners


def get_adapter_state_keys(model: Any) -> list[str]:
    return list(_peft_state(model).keys())


def _peft_state(model: Any) -> AdapterState:
    # save_embedding_layers=False: when LoRA targets an output head or embedding, PEFT would otherwise
    # add that layer's frozen base weight to the state, and base weights must never be shipped.
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model, save_embedding_layers=False)


def state_nbytes(state: Mapping[str, torch.Tensor]) -> int:
    """Bytes a state occupies on the wire (tensor payload only)."""
    if isinstance(state, FlatState):
        return state.nbytes
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
