"""The shared update math of the rules: the sample-weighted mean, the pseudo-gradient and the step.

The mean and the pseudo-gradient are the sums through which a ``linear`` rule reads its clients. Both
are one :class:`MeanFold`, which adds one client at a time (so a round can be folded as its fits return)
in float64 and casts back at the end, so results do not depend on the adapter's dtype more than they
must, nor on whether the clients were folded as they came or all at once. Adapters that arrive as one
flat buffer (:class:`~fedray.flat.FlatState`) are added in one operation over the whole buffer instead
of one per tensor: the same element-wise arithmetic, so the same bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Sequence

from fedray.flat import FlatState, Layout
from fedray.lazy import lazy_import
from fedray.strategies.base import Accumulator, AdapterState, Aggregate, ClientResult

torch = lazy_import("torch")  # imported by the first computation (fedray.lazy)

State = Mapping[str, "torch.Tensor"]


class MeanFold:
    """Σ_k (w_k / W)·(x_k − c) per tensor, W = Σ_k w_k, with the weights known before the first client.

    ``center`` c: None for the plain weighted mean of the states, the global state for the
    pseudo-gradient. Each client's term is added in float64 in the order the clients are added.
    """

    def __init__(self, weights: Sequence[float], center: State | None = None) -> None:
        self.weights = list(weights)
        self.total = float(sum(self.weights))
        if not self.weights or self.total <= 0:
            raise ValueError("a weighted mean needs at least one state and a positive total weight")
        self.center = center
        self._center64: dict[str, torch.Tensor] | None = None
        self.sums: dict[str, torch.Tensor] | None = None  # float64, per tensor
        self.dtypes: dict[str, torch.dtype] = {}
        self.count = 0
        self._flat: tuple[Layout, torch.Tensor, torch.Tensor | None] | None = None  # see _start_flat

    def add(self, state: State) -> None:
        """Fold in the next state with its weight."""
        if self.count >= len(self.weights):
            raise ValueError(f"MeanFold has {len(self.weights)} weights; a state beyond them was added")
        share = self.weights[self.count] / self.total
        if self.sums is None:
            self._start(state)
        flat = self._flat_values(state)
        if flat is not None:  # (n,) all tensors at once
            _, acc, center = self._flat
            x = flat.to(torch.float64)
            acc += (x if center is None else x - center) * share
        else:
            for key, acc in self.sums.items():
                x = state[key].to(torch.float64)
                acc += (x if self._center64 is None else x - self._center64[key]) * share
        self.count += 1

    def _start(self, state: State) -> None:
        keys = list(state.keys() if self.center is None else self.center.keys())
        self.dtypes = {k: state[k].dtype for k in keys}
        if self._start_flat(state):
            return
        self.sums = {k: torch.zeros_like(state[k], dtype=torch.float64) for k in keys}
        if self.center is not None:
            self._center64 = {k: x.to(torch.float64) for k, x in self.center.items()}

    def _start_flat(self, state: State) -> bool:
        """One float64 sum over the whole buffer when the states (and the center) are FlatStates of
        one layout and one dtype; ``sums`` are then views of it."""
        center = self.center
        same_center = center is None or (isinstance(center, FlatState) and center.layout == state.layout)
        if not isinstance(state, FlatState) or state.typed() is None or not same_center:
            return False
        layout = state.layout
        acc = torch.zeros(state.typed().numel(), dtype=torch.float64)  # (n,) padding included
        center64 = None if center is None else center.typed().to(torch.float64)
        self._flat = (layout, acc, center64)
        self.sums = {slot.key: acc[layout.element(slot)].view(slot.shape) for slot in layout.slots}
        self._center64 = None if center64 is None else \
            {slot.key: center64[layout.element(slot)].view(slot.shape) for slot in layout.slots}
        return True

    def _flat_values(self, state: State) -> torch.Tensor | None:
        """``state``'s whole buffer when it can be added at once, else None (added tensor by tensor)."""
        if self._flat is None or not isinstance(state, FlatState) or state.layout != self._flat[0]:
            return None
        return state.typed()

    def mean(self) -> AdapterState:
        """Σ_k (w_k/W)·x_k, each tensor cast back to the first state's dtype."""
        return {key: acc.to(self.dtypes[key]) for key, acc in self._sums().items()}

    def update(self) -> AdapterState:
        """Δ = Σ_k (w_k/W)·(x_k − x), in :func:`state_dtype` of each global tensor."""
        if self.center is None:
            raise ValueError("MeanFold.update needs the global state as the center")
        return {key: acc.to(state_dtype(self.center[key].dtype)) for key, acc in self._sums().items()}

    def _sums(self) -> dict[str, torch.Tensor]:
        if self.sums is None:
            raise ValueError("no state was added to the MeanFold")
        return self.sums


class MeanAccumulator(Accumulator):
    """The usual linear rule's fold: one :class:`MeanFold` over the clients' params, then the rule's step."""

    def __init__(self, fold: MeanFold, finish: Callable[[MeanFold], Aggregate]) -> None:
        self.fold = fold
        self._finish = finish

    def add(self, result: ClientResult) -> None:
        self.fold.add(result.params)

    def finish(self) -> Aggregate:
        return self._finish(self.fold)


def weighted_mean(states: Sequence[State], weights: Sequence[float]) -> AdapterState:
    """Σ_k w_k · x_k / Σ_k w_k per tensor, computed in float64 and cast back to each tensor's dtype."""
    if not states:
        raise ValueError("weighted_mean needs at least one state and a positive total weight")
    fold = MeanFold(weights)
    for state, _ in zip(states, weights):
        fold.add(state)
    return fold.mean()


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype server state and pseudo-gradients are kept in: at least float32 (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


def update_weights(num_examples: Sequence[int], weighted: bool) -> list[float]:
    """A pseudo-gradient's weights: the sample counts (``weighted``), else 1 per client."""
    return [float(n) if weighted else 1.0 for n in num_examples]


def pseudo_gradient(
    global_state: State,
    results: Sequence[ClientResult],
    weighted: bool = True,
) -> AdapterState:
    """Δ = Σ_k w_k (x_k − x) / Σ_k w_k with w_k = n_k (``weighted``) or 1, per tensor.

    Accumulated in float64 and returned in :func:`state_dtype` of each global tensor (so a bfloat16
    adapter's small deltas are not rounded away).
    """
    if not results:
        raise ValueError("pseudo_gradient needs at least one result and a positive total weight")
    fold = MeanFold(update_weights([r.num_examples for r in results], weighted), center=global_state)
    for result in results:
        fold.add(result.params)
    return fold.update()


def apply_update(global_state: State, step: State, scale: float = 1.0) -> AdapterState:
    """x + scale · step per tensor, computed in float64 and cast back to each global tensor's dtype."""
    return {key: (x.to(torch.float64) + scale * step[key].to(torch.float64)).to(x.dtype)
            for key, x in global_state.items()}
