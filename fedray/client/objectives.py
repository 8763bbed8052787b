"""Client-side halves of FL algorithms, shipped with each fit.

A :class:`LocalObjective` is an immutable, typed description of what a client optimises (chosen by
``objective: {name: ...}`` in the scenario, or paired with its server half, as SCAFFOLD is). For each fit
the training loop calls :meth:`LocalObjective.begin`, which returns the mutable per-fit
:class:`ObjectiveRun` whose hooks add loss terms and adjust gradients. So an algorithm cannot be
half-applied because a client forgot a string key, and the objective sent to many clients stays
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, TypeVar

from fedray.config.params import params_or_raise
from fedray.config.schema import spec
from fedray.errors import ConfigError, FedRayError
from fedray.lazy import lazy_import
from fedray.registry import Registry

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)

if TYPE_CHECKING:
    AdapterState = dict[str, torch.Tensor]
else:  # the loader reads the fields' types to check parameters; that must not import torch
    AdapterState = dict[str, Any]

OBJECTIVES: Registry[type] = Registry("client objective")

#: SCAFFOLD's extras: the client's new control variate c_i⁺ (kept for its next fit) and Δc_i (summed by
#: the server). Only the two halves of SCAFFOLD read them.
CONTROL_VARIATE = "control_variate"
CONTROL_DELTA = "control_delta"

ObjectiveClass = TypeVar("ObjectiveClass", bound=type)

# Set while an objective's fields are being built by the parameter checker, whose construction of the
# class must not start the check of :meth:`LocalObjective.__post_init__` once more.
_BUILDING: ContextVar[bool] = ContextVar("fedray_objective_building", default=False)


@contextmanager
def _building() -> Iterator[None]:
    token = _BUILDING.set(True)
    try:
        yield
    finally:
        _BUILDING.reset(token)


def register(name: str) -> Callable[[ObjectiveClass], ObjectiveClass]:
    """Register an objective class under ``name``; the class is its own parameter dataclass."""

    def add(cls: ObjectiveClass) -> ObjectiveClass:
        cls.name = name
        return OBJECTIVES.register(name, params=cls)(cls)

    return add


class ObjectiveRun:
    """The per-fit state of an objective; the plain one adds nothing."""

    def loss(self, model: Any, task_loss: torch.Tensor) -> torch.Tensor:
        return task_loss

    def after_backward(self, model: Any) -> None:
        """Called after ``backward()`` and before clipping and the optimizer step."""

    def extras(self, model: Any, steps: int, mean_lr: float) -> dict[str, Any]:
        """What the client returns besides its params (e.g. SCAFFOLD's control-variate delta)."""
        return {}


@register("plain")
@dataclass(frozen=True)
class LocalObjective:
    """Plain empirical risk: the task loss and nothing else.

    Objectives are frozen dataclasses whose fields are their parameters (``spec()`` bounds and help), so
    the loader checks ``objective.mu`` at load, and constructing one directly (``FedProx(mu=-1)``) is
    checked by the same rules.
    """

    name: ClassVar[str] = "plain"
    #: Whether the objective's run edits gradients after backward (lost under ZeRO stages >= 1, which
    #: reduce and partition gradients inside backward).
    adjusts_gradients: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if _BUILDING.get():
            return  # being built by the checker below (or by the loader through parse_objective)
        with _building():
            params_or_raise(type(self), {f.name: getattr(self, f.name) for f in fields(self)}, self.name)

    def begin(self, model: Any, global_state: AdapterState) -> ObjectiveRun:
        """Called once per fit, after the global adapter is loaded and before the first step."""
        return ObjectiveRun()

    def for_client(self, client_state: dict[str, Any] | None) -> LocalObjective:
        """This objective for one client, given its persistent state (None before its first fit)."""
        return self


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


@register("fedprox")
@dataclass(frozen=True)
class FedProx(LocalObjective):
    """FedProx (Li et al., 2020, "Federated Optimization in Heterogeneous Networks"):
    minimise F_k(w) + μ/2·‖w − w_global‖² over the trainable (adapter) parameters."""

    mu: float = spec(0.01, ge=0.0, help="μ, weight of the proximal term μ/2·‖w − w_global‖²")

    def begin(self, model: Any, global_state: AdapterState) -> ObjectiveRun:
        return _ProximalRun([p for p in model.parameters() if p.requires_grad], self.mu)


@register("adaptive_prox")
@dataclass(frozen=True)
class AdaptiveProx(LocalObjective):
    """FedMLLM's adaptive regularization: the proximal term only on the middle LLM layers.

    Trainable params of language-model layers L with ``skip_layers`` ≤ L ≤ N − 1 − ``skip_layers`` get
    (μ·``weight``)/2·‖w − w_global‖²; the first and last ``skip_layers`` layers (closest to the inputs
    and to the output) and params outside the layers (projector, head) adapt freely. Layer indices come
    from module paths, N from the model config (the reference hard-codes 28 layers; we never do).
    Defaults are the reference's: μ 0.01, weight 0.1, 4 layers free at each end.
    """

    mu: float = spec(0.01, ge=0.0, help="μ of the proximal term on the window's layers")
    weight: float = spec(0.1, ge=0.0, help="scales μ on the window: coefficient μ·weight")
    skip_layers: int = spec(4, ge=0, help="language-model layers left free at each end")

    def begin(self, model: Any, global_state: AdapterState) -> ObjectiveRun:
        layers = num_lm_layers(model)
        window = range(self.skip_layers, layers - self.skip_layers)
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        chosen = [p for name, p in trainable if lm_layer_index(name) in window]
        if not chosen:
            raise FedRayError(_empty_window_message(self.skip_layers, layers, [n for n, _ in trainable]))
        return _ProximalRun(chosen, self.mu * self.weight)


def lm_layer_index(param_name: str) -> int | None:
    """The language-model decoder layer a parameter belongs to, or None (vision tower, projector, head).

    The layer prefix comes from the model-family registry (``language_model`` for LLaVA and Qwen2-VL,
    ``text_model`` for Idefics3, ``llm`` for MiniCPM-V), so the window is found on every family.
    """
    # Imported here: the models package loads transformers, which the aggregator (it builds objectives
    # but never runs them) must not pay for.
    from fedray.models.families import FAMILIES

    for family in FAMILIES:
        match = FAMILIES.get(family).layer_pattern.search(param_name)
        if match:
            return int(match.group(1))
    return None


def _empty_window_message(skip_layers: int, layers: int, trainable: list[str]) -> str:
    """Why adaptive_prox regularizes nothing, with what it saw, so the fix is obvious."""
    shown = ", ".join(trainable[:6]) + (f" (+{len(trainable) - 6} more)" if len(trainable) > 6 else "")
    found = sorted({i for i in map(lm_layer_index, trainable) if i is not None})
    return (f"objective adaptive_prox: its layer window [{skip_layers}, {layers - 1 - skip_layers}] of the "
            f"language model's {layers} layers selects no trainable parameter (trainable layers found: "
            f"{found or 'none'}; trainable parameters: {shown or 'none'}); lower objective.skip_layers "
            "below half the layer count, or put LoRA on the language model's layers (lora.target_modules)")


def num_lm_layers(model: Any) -> int:
    """The language model's layer count, from the model config."""
    config = model.config
    text_config = getattr(config, "text_config", None) or config
    # The assembled model (and the tiny eye) keep their language model's config as a plain dict.
    layers = text_config.get("num_hidden_layers") if isinstance(text_config, dict) \
        else getattr(text_config, "num_hidden_layers", None)
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
        return {CONTROL_VARIATE: new, CONTROL_DELTA: delta}


@dataclass(frozen=True)
class ScaffoldObjective(LocalObjective):
    """SCAFFOLD's client half (Karimireddy et al., 2020): local steps with gradients corrected by
    c − c_i, where c is the server control variate and c_i the client's own (kept across rounds)."""

    name: ClassVar[str] = "scaffold"
    adjusts_gradients: ClassVar[bool] = True
    server_variate: AdapterState = spec(default_factory=dict, help="the server's control variate c")
    client_variate: Optional[AdapterState] = spec(None, help="this client's c_i (None before its first fit)")

    def for_client(self, client_state: dict[str, Any] | None) -> LocalObjective:
        variate = (client_state or {}).get(CONTROL_VARIATE)
        return ScaffoldObjective(server_variate=self.server_variate, client_variate=variate)

    def begin(self, model: Any, global_state: AdapterState) -> ObjectiveRun:
        from fedray.models.lora import adapter_parameters

        return _ScaffoldRun(adapter_parameters(model), self.server_variate, self.client_variate)


def parse_objective(name: str, options: Mapping[str, Any] | None,
                    path: str = "objective") -> tuple[LocalObjective | None, list[str]]:
    """The objective registered as ``name`` built from ``options``: (objective or None, every problem)."""
    with _building():
        return OBJECTIVES.parse(name, options, path)


def build_objective(name: str, options: Mapping[str, Any] | None = None) -> LocalObjective:
    """The objective registered as ``name``, its ``options`` checked as the scenario's ``objective``.

    >>> build_objective("fedprox", {"mu": 0.1})
    FedProx(mu=0.1)
    """
    objective, problems = parse_objective(name, options)
    if problems or objective is None:
        raise ConfigError(problems)
    return objective
