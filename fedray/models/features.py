"""Frozen-encoder features: a frozen vision tower without LoRA runs once per image, not once per step.

When nothing in the vision tower trains and it computes the same thing in training and in evaluation (no
active dropout, no batch statistics), its output for an image is a constant of the run. So
:class:`VisionFeatures` computes that output once per image (in batches, through the very call the model
makes) and swaps the tower for a *stand-in* that returns a batch's cached output in place of running. The
cached output travels in the batch where the pixels did (``pixel_values``); everything after the tower
(the projector, trained or not, and the language model) runs unchanged, so losses and gradients are those
of the uncached model. Given real pixels, the stand-in runs the tower it holds, so the model stays usable
as it was.

Which output is cached is per model class (a :class:`FeatureTap`, registered by class name):

- ``LlavaForConditionalGeneration`` (the tiny VLM and the hf ``llava`` family, with a CLIP or SigLIP
  tower): the hidden state(s) ``vision_feature_layer`` selects, before ``vision_feature_select_strategy``
  and the projector, which both still run;
- ``AssembledVlm``: EfficientNet-Lite0's feature map, before pooling and the projector.

Other families are not tapped (docs/models.md says why): their encoders are tied to per-image metadata
(Qwen2-VL's ``image_grid_thw`` and its merger inside ``visual``) or split images into a varying number of
crops or slices (Idefics3/SmolVLM, MiniCPM-V), which a per-image cache does not fit without more work.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from fedray.errors import ModelError
from fedray.models.collate import input_dtype
from fedray.models.fingerprint import digest, library_versions
from fedray.registry import Registry

logger = logging.getLogger(__name__)


class FeatureTap(ABC):
    """Where one model class's vision tower sits, what of its output the model uses, and its stand-in."""

    input_key = "pixel_values"  # the batch entry the tower reads (and the cached output replaces)

    @abstractmethod
    def tower(self, model: nn.Module) -> nn.Module:
        """The vision tower of ``model`` (the unwrapped base model)."""

    @abstractmethod
    def set_tower(self, model: nn.Module, module: nn.Module) -> None:
        """Put ``module`` where the tower was."""

    @abstractmethod
    def pixel_shape(self, model: nn.Module) -> tuple[int, ...]:
        """The shape of one image's pixels, (channels, height, width)."""

    @abstractmethod
    def run(self, model: nn.Module, tower: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """What the model takes of the tower's output for these pixels: (images, ...)."""

    @abstractmethod
    def stand_in(self, model: nn.Module, tower: nn.Module, feature_shape: tuple[int, ...]) -> nn.Module:
        """A module that returns cached output (shape (images, *feature_shape)) as the tower would."""

    def problems(self, model: nn.Module) -> list[str]:
        """Why this model's tower cannot be cached (none: it can)."""
        return []

    def settings(self, model: nn.Module) -> dict[str, Any]:
        """Model settings that change what :meth:`run` returns."""
        return {}


#: Feature taps by model class name (the unwrapped model's ``type(model).__name__``).
FEATURE_TAPS: Registry[FeatureTap] = Registry("vision feature tap")


class VisionFeatures:
    """A model whose frozen vision tower reads cached output; :meth:`compute` makes that output.

    Build with :meth:`attach`, which installs the stand-in. ``fingerprint`` names everything the output
    depends on (tap, settings, the tower's weights, dtype, device), for caching it on disk.
    """

    def __init__(self, model: nn.Module, tap: FeatureTap, tower: nn.Module, batch_size: int = 32) -> None:
        self.model, self.tap, self.tower = model, tap, tower
        self.input_key = tap.input_key
        self.batch_size = batch_size
        base = _unwrapped(model)
        probe = torch.zeros((1, *tap.pixel_shape(base)))
        self.feature_shape = tuple(self.compute(probe).shape[1:])
        if self.feature_shape == tuple(probe.shape[1:]):
            raise ModelError("the tower's output has the shape of its pixels, so the stand-in could not tell "
                             "cached output from images")
        device = next(tower.parameters()).device
        self.fingerprint = digest({
            "tap": type(tap).__qualname__, "settings": tap.settings(base), "weights": _weights_digest(tower),
            "dtype": str(input_dtype(model)), "device": _device_name(device),
            "libraries": library_versions(("torch", "transformers")),
        })
        tap.set_tower(base, tap.stand_in(base, tower, self.feature_shape))

    @classmethod
    def attach(cls, model: nn.Module, batch_size: int = 32) -> VisionFeatures | None:
        """Cache ``model``'s vision tower output when that is exact; None (and why, logged) otherwise."""
        reason = unsupported_reason(model)
        if reason is not None:
            logger.info("vision features are computed at every step: %s", reason)
            return None
        base = _unwrapped(model)
        tap = FEATURE_TAPS.get(type(base).__name__)
        tower = tap.tower(base)
        tower = tower.tower if isinstance(tower, StandIn) else tower  # attached before: start over
        try:
            return cls(model, tap, tower, batch_size)
        except ModelError as exc:
            logger.info("vision features are computed at every step: %s", exc)
            return None

    @torch.no_grad()
    def compute(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The tower's output for (images, C, H, W) pixels, as the model takes it; on the CPU."""
        device = next(self.tower.parameters()).device
        pixels = pixel_values.to(device, dtype=input_dtype(self.model))  # as move_batch casts them
        return self.tap.run(_unwrapped(self.model), self.tower, pixels).to("cpu")


def unsupported_reason(model: nn.Module) -> str | None:
    """Why ``model``'s vision tower output cannot be cached exactly, or None when it can."""
    base = _unwrapped(model)
    name = type(base).__name__
    if name not in FEATURE_TAPS:
        return f"no feature tap for {name} (tapped: {', '.join(FEATURE_TAPS.names())})"
    tap = FEATURE_TAPS.get(name)
    problems = tap.problems(base)
    if not problems:
        tower = tap.tower(base)
        problems = frozen_problems(tower.tower if isinstance(tower, StandIn) else tower)
    return "; ".join(problems) if problems else None


def frozen_problems(tower: nn.Module) -> list[str]:
    """Why ``tower``'s output is not a constant of the run: trained params, LoRA, randomness in training."""
    problems = []
    if any(p.requires_grad for p in tower.parameters()):
        problems.append("the vision tower has trainable parameters (lora.vision, or a target regex or "
                        "modules_to_save reaching it)")
    if any("lora_" in name for name, _ in tower.named_modules()):
        problems.append("the vision tower carries LoRA")
    was_training = tower.training
    tower.train(True)
    try:
        if any(_random_in_training(m) for m in tower.modules()):
            problems.append("the vision tower has dropout or batch statistics active in training")
    finally:
        tower.train(was_training)
    return problems


def _random_in_training(module: nn.Module) -> bool:
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return module.p > 0 and module.training
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.training
    rates = [getattr(module, name, 0.0) for name in ("dropout", "attention_dropout")]
    return module.training and any(isinstance(r, float) and r > 0 for r in rates)


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model under PEFT's wrappers (itself when not wrapped)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _weights_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


class StandIn(nn.Module):
    """What sits where a vision tower was: it holds the tower (``.tower``) and answers from cache."""

    def __init__(self, tower: nn.Module, feature_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.tower = tower
        self.feature_shape = feature_shape

    def is_cached(self, values: torch.Tensor) -> bool:
        """Whether ``values`` is cached output (else: pixels, for the tower itself)."""
        return tuple(values.shape[1:]) == self.feature_shape


# -- LLaVA --------------------------------------------------------------------------------------------
class _LlavaStandIn(StandIn):
    """LLaVA's vision tower answering from cache: ``hidden_states[layer]`` is the batch's cached output."""

    def __init__(self, tower: nn.Module, feature_shape: tuple[int, ...], layers: int | list[int],
                 num_states: int) -> None:
        super().__init__(tower, feature_shape)
        self.layers, self.num_states = layers, num_states

    def forward(self, pixel_values: torch.Tensor, **kwargs: Any) -> Any:
        if not self.is_cached(pixel_values):  # real pixels: run the tower
            return self.tower(pixel_values, **kwargs)
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        hidden: list[torch.Tensor | None] = [None] * self.num_states
        if isinstance(self.layers, int):
            hidden[self.layers] = pixel_values  # (N, T, D)
        else:
            for i, layer in enumerate(self.layers):
                hidden[layer] = pixel_values[:, i]  # (N, L, T, D) → (N, T, D)
        return BaseModelOutputWithPooling(hidden_states=tuple(hidden))


class LlavaTap(FeatureTap):
    """The hidden state(s) of ``vision_feature_layer``, before the select strategy and the projector."""

    _TOWERS = ("clip_vision_model", "siglip_vision_model")

    def tower(self, model: nn.Module) -> nn.Module:
        return model.model.vision_tower

    def set_tower(self, model: nn.Module, module: nn.Module) -> None:
        model.model.vision_tower = module

    def pixel_shape(self, model: nn.Module) -> tuple[int, ...]:
        vision = model.config.vision_config
        return (vision.num_channels, vision.image_size, vision.image_size)

    def problems(self, model: nn.Module) -> list[str]:
        kind = model.config.vision_config.model_type
        if kind not in self._TOWERS:
            return [f"the LLaVA vision tower is {kind!r}; only fixed-size towers {self._TOWERS} are tapped"]
        return []

    def settings(self, model: nn.Module) -> dict[str, Any]:
        return {"layer": model.config.vision_feature_layer}

    def run(self, model: nn.Module, tower: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        # The call LlavaModel.get_image_features makes: the selected layer(s) are what it reads.
        layers = model.config.vision_feature_layer
        states = tower(pixel_values, return_dict=True, output_hidden_states=layers).hidden_states
        if isinstance(layers, int):
            return states[layers]  # (N, T, D)
        return torch.stack([states[layer] for layer in layers], dim=1)  # (N, L, T, D)

    def stand_in(self, model: nn.Module, tower: nn.Module, feature_shape: tuple[int, ...]) -> nn.Module:
        num_states = model.config.vision_config.num_hidden_layers + 1  # embeddings, then each layer
        return _LlavaStandIn(tower, feature_shape, model.config.vision_feature_layer, num_states)


# -- assembled ----------------------------------------------------------------------------------------
class _FeatureMapStandIn(StandIn):
    """The assembled model's EfficientNet answering ``features(x)`` from cache."""

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.is_cached(pixel_values):
            return pixel_values  # (N, 1280, S/32, S/32), cached
        return self.tower.features(pixel_values)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.tower(pixel_values)


class AssembledTap(FeatureTap):
    """EfficientNet-Lite0's feature map, before pooling and the projector."""

    def tower(self, model: nn.Module) -> nn.Module:
        return model.vision_tower

    def set_tower(self, model: nn.Module, module: nn.Module) -> None:
        model.vision_tower = module

    def pixel_shape(self, model: nn.Module) -> tuple[int, ...]:
        return (3, model.config.image_size, model.config.image_size)

    def run(self, model: nn.Module, tower: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        return tower.features(pixel_values)  # (N, 1280, S/32, S/32): what AssembledVlm.image_tokens pools

    def stand_in(self, model: nn.Module, tower: nn.Module, feature_shape: tuple[int, ...]) -> nn.Module:
        return _FeatureMapStandIn(tower, feature_shape)


FEATURE_TAPS.register("LlavaForConditionalGeneration")(LlavaTap())
FEATURE_TAPS.register("AssembledVlm")(AssembledTap())
