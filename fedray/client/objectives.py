"""Client-side halves of FL algorithms, shipped with each fit.

A :class:`LocalObjective` is a typed object the strategy hands to clients (through
``Strategy.configure_fit``); the client's training loop calls its hooks, so an algorithm cannot be
half-applied because a client forgot a string key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

AdapterState = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LocalObjective:
    """Plain empirical risk: the task loss and nothing else.

    Hooks (each a no-op here): :meth:`begin` before the first step, :meth:`loss` to add terms to the
    task loss, :meth:`after_backward` to adjust gradients, :meth:`extras` for what the client returns
    besides its params.
    """

    def begin(self, model: Any, global_state: AdapterState) -> None:
        """Called once per fit, after the global adapter is loaded and before the first step."""

    def loss(self, model: Any, task_loss: torch.Tensor) -> torch.Tensor:
        return task_loss

    def after_backward(self, model: Any) -> None:
        """Called after ``backward()`` and before clipping and the optimizer step."""

    def extras(self, model: Any) -> dict[str, Any]:
        return {}


PlainObjective = LocalObjective
