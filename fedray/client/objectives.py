"""Client-side halves of FL algorithms, shipped with each fit.

A :class:`LocalObjective` is an immutable, typed description of what a client optimises (chosen by
``objective: {name: ...}`` in the scenario, or paired with its server half, as SCAFFOLD is). For each fit
the training loop calls :meth:`LocalObjective.begin`, which returns the mutable per-fit
:class:`ObjectiveRun` whose hooks add loss terms and adjust gradients. So an algorithm cannot be
half-applied because a client forgot a string key, and the objective sent to many clients stays
unchanged.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from fedray.errors import FedRayError
from fedray.registry import Registry

AdapterState = dict[str, torch.Tensor]

OBJECTIVES: Registry[type] = Registry("client objective")


class ObjectiveRun:
    """The per-fit state of an objective; the plain one adds nothing."""

    def loss(self, model: Any, task_loss: torch.Tensor) -> torch.Tensor:
        return task_loss

    def after_backward(self, model: Any) -> None:
        """Called after ``backward()`` and before clipping and the optimizer step."""

    def extras(self, model: Any, steps: int, mean_lr: float) -> dict[str, Any]:
        """What the client returns besides its params (e.g. SCAFFOLD's control-variate delta)."""
        return {}


@OBJECTIVES.register("plain")
@dataclass(frozen=True)
class LocalObjective:
    """Plain empirical risk: the task loss and nothing else."""

    #: Whether the objective's run edits gradients after backward (lost under ZeRO stages >= 1, which
    #: reduce and partition gradients inside backward).
    adjusts_gradients: ClassVar[bool] = False

    def begin(self, model: Any, global_state: AdapterState) -> ObjectiveRun:
        """Called once per fit, after the global adapter is loaded and before the first step."""
        return ObjectiveRun()

    def for_client(self, client_state: dict[str, Any] | None) -> LocalObjective:
        """This objective for one client, given its persistent state (None before its first fit)."""
        return self


PlainObjective = LocalObjective


class _ProximalRun(ObjectiveRun):
    """Adds coefficient/2 · Σ‖p − p_start‖² over the chosen trainable params (p_start: the global ones)."""

    def __init__(self, params: list[torch.nn.Parameter], coefficient: float) -> None:
        self.params = params
        self.anchors = [p.detach().clone() for p in params]  # the global adapter just loaded
        self.coefficient = coefficient

    def loss(self, model: Any, task_loss: torch.Tensor) -> torch.Tensor:
        if not self.params or self.coefficient == 0.0:
            return task_loss
        prox = sum(((p - a) ** 2).sum() for p, a in zip(self.params, self.anchors))
        return task_loss + 0.5 * self.coefficient * prox


@OBJECTIVES.register("fedprox")
@dataclass(frozen=True)
class FedProx(LocalObjective):
    """FedProx (Li et al., 2020, "Federated Optimization in Heterogeneous Networks"):
    minimise F_k(w) + μ/2·‖w − w_global‖² over the trainable (adapter) parameters."""

    mu: float = 0.01

    def __post_init__(self) -> None:
        if self.mu < 0:
            raise FedRayError(f"objective fedprox: mu must be ≥ 0, got {self.mu}")

    def begin(self, model: Any, global_state: AdapterState) -> ObjectiveRun:
        return _ProximalRun([p for p in model.parameters() if p.requires_grad], self.mu)


@OBJECTIVES.register("adaptive_prox")
@dataclass(frozen=True)
class AdaptiveProx(LocalObjective):
    """FedMLLM's adaptive regularization (spec §5.2): the proximal term only on the middle LLM layers.

    Trainable params of language-model layers L with ``skip_layers`` ≤ L ≤ N − 1 − ``skip_layers`` get
    (μ·``weight``)/2·‖w − w_global‖²; the first and last ``skip_layers`` layers (closest to the inputs
    and to the output) and params outside the layers (projector, head) adapt freely. Layer indices come
    from module paths, N from the model config (the reference hard-codes 28 layers; we never do).
    Defaults are the reference's: μ 0.01, weight 0.1, 4 layers free at each end.
    """

    mu: float = 0.01
    weight: float = 0.1
    skip_layers: int = 4

    def __post_init__(self) -> None:
        if self.mu < 0 or self.weight < 0 or self.skip_layers < 0:
            raise FedRayError(f"objective adaptive_prox: mu, weight and skip_layers must be ≥ 0, got "
                              f"mu={self.mu}, weight={self.weight}, skip_layers={self.skip_layers}")

    def begin(self, model: Any, global_state: AdapterState) -> ObjectiveRun:
        window = range(self.skip_layers, num_lm_layers(model) - self.skip_layers)
        chosen = [p for name, p in model.named_parameters()
                  if p.requires_grad and lm_layer_index(name) in window]
        return _ProximalRun(chosen, self.mu * self.weight)


_LM_LAYER = re.compile(r"language_model\.(?:model\.)?layers\.(\d+)\.")


def lm_layer_index(param_name: str) -> int | None:
    """The language-model layer a parameter belongs to, or None (vision tower, projector, head)."""
    match = _LM_LAYER.search(param_name)
    return int(match.group(1)) if match else None


def num_lm_layers(model: Any) -> int:
    """The language model's layer count, from the model config."""
    config = model.config
    text_config = getattr(config, "text_config", None) or config
    layers = getattr(text_config, "num_hidden_layers", None)
    if not isinstance(layers, int):
        raise FedRayError("cannot read the language model's num_hidden_layers from the model config; "
                          "adaptive_prox needs it to place its layer window")
    return layers


class _ScaffoldRun(ObjectiveRun):
    """Corrects every gradient by (c − c_i) and returns option II's control-variate update."""

    def __init__(self, named: dict[str, torch.nn.Parameter], server: AdapterState,
                 client: AdapterState | None) -> None:
        self.named = named
        self.start = {k: p.detach().clone() for k, p in named.items()}
        device = next(iter(named.values())).device if named else torch.device("cpu")
        self.c = {k: server[k].to(device) for k in named}
        self.c_i = {k: (client[k].to(device) if client else torch.zeros_like(p)) for k, p in named.items()}

    def after_backward(self, model: Any) -> None:
        for key, param in self.named.items():
            if param.grad is not None:
                param.grad.add_(self.c[key] - self.c_i[key])

    def extras(self, model: Any, steps: int, mean_lr: float) -> dict[str, Any]:
        # Option II (Karimireddy et al., 2020): c_i⁺ = c_i − c + (x − y_i) / (K·η_l); with Adam and a
        # schedule, η_l is the mean learning rate over the K local steps.
        scale = 1.0 / (max(steps, 1) * mean_lr)
        new = {k: (self.c_i[k] - self.c[k] + (self.start[k] - p.detach()) * scale).cpu()
               for k, p in self.named.items()}
        delta = {k: new[k] - self.c_i[k].cpu() for k in new}
        return {"control_variate": new, "control_delta": delta}


@dataclass(frozen=True)
class ScaffoldObjective(LocalObjective):
    """SCAFFOLD's client half (Karimireddy et al., 2020): local steps with gradients corrected by
    c − c_i, where c is the server control variate and c_i the client's own (kept across rounds)."""

    adjusts_gradients: ClassVar[bool] = True
    server_variate: AdapterState = field(default_factory=dict)
    client_variate: AdapterState | None = None

    def for_client(self, client_state: dict[str, Any] | None) -> LocalObjective:
        variate = (client_state or {}).get("control_variate")
        return ScaffoldObjective(server_variate=self.server_variate, client_variate=variate)

    def begin(self, model: Any, global_state: AdapterState) -> ObjectiveRun:
        from fedray.models.lora import adapter_parameters

        return _ScaffoldRun(adapter_parameters(model), self.server_variate, self.client_variate)


def build_objective(name: str, **params: Any) -> LocalObjective:
    """The client objective registered as ``name`` with ``params`` (clear error for unknown ones)."""
    cls = OBJECTIVES.get(name)
    known = [f.name for f in dataclasses.fields(cls)]  # fields() leaves out ClassVars
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise FedRayError(f"objective {name!r} has no parameter(s) {', '.join(unknown)}; "
                          f"it accepts: {', '.join(known) or 'none'}")
    return cls(**params)
