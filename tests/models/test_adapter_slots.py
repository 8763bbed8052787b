"""Loading and reading an adapter are in-place copies into the model's own tensors, found once per model."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model_state_dict

from fedray.config.schema import LoraConfig, ModelConfig, TinyVlmConfig
from fedray.errors import ModelError
from fedray.flat import FlatState
from fedray.models import build_model
from fedray.models.lora import adapter_slots, apply_lora, get_adapter_state, set_adapter_state

TINY = ModelConfig(tiny=TinyVlmConfig(text_layers=1, vision_layers=1))


@pytest.fixture(scope="module")
def model():
    return apply_lora(build_model(TINY).model, LoraConfig(rank=2, modules_to_save=("multi_modal_projector",)))


def test_read_is_one_buffer_with_peft_keys_order_and_values(model):
    peft = get_peft_model_state_dict(model, save_embedding_layers=False)
    state = get_adapter_state(model)
    assert isinstance(state, FlatState)
    assert list(state) == list(peft) and all(torch.equal(state[k], peft[k]) for k in peft)
    state[next(iter(state))].add_(1.0)  # the copy is the caller's
    assert all(torch.equal(get_adapter_state(model)[k], peft[k]) for k in peft)


def test_load_copies_into_the_same_parameter_objects(model):
    before = {name: p for name, p in model.named_parameters()}
    pointers = {name: p.data_ptr() for name, p in before.items()}
    original = get_adapter_state(model)
    changed = {k: v + 0.5 for k, v in original.items()}
    set_adapter_state(model, changed)
    assert all(p is before[name] and p.data_ptr() == pointers[name] for name, p in model.named_parameters())
    assert all(torch.equal(get_adapter_state(model)[k], changed[k]) for k in changed)
    set_adapter_state(model, original)  # from a FlatState of the model's own layout
    assert all(torch.equal(get_adapter_state(model)[k], original[k]) for k in original)


def test_a_replaced_parameter_object_is_still_reached(model):
    """ZeRO-3's unwrap gives the model new Parameter objects: the slots look them up on every copy."""
    slots = adapter_slots(model)
    module, leaf = slots.targets[0]
    old = getattr(module, leaf)
    setattr(module, leaf, torch.nn.Parameter(old.detach().clone(), requires_grad=old.requires_grad))
    key = slots.layout.slots[0].key
    state = dict(get_adapter_state(model))
    state[key] = torch.full_like(state[key], 3.0)
    set_adapter_state(model, state)
    assert torch.equal(getattr(module, leaf).detach(), torch.full_like(old, 3.0))
    assert not torch.equal(old.detach(), getattr(module, leaf).detach())


def test_a_foreign_state_is_refused(model):
    state = dict(get_adapter_state(model))
    state.pop(next(iter(state)))
    with pytest.raises(ModelError, match="missing"):
        set_adapter_state(model, state)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_the_buffer_moves_in_one_copy_and_reads_back_exactly():
    model = apply_lora(build_model(TINY).model, LoraConfig(rank=2)).to("cuda")
    original = get_adapter_state(model)
    changed = FlatState.pack({k: v + 0.25 for k, v in original.items()})
    set_adapter_state(model, changed)
    back = get_adapter_state(model)
    assert all(back[k].device.type == "cpu" and torch.equal(back[k], changed[k]) for k in changed)
