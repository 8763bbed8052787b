"""The shared update math of the rules: the sample-weighted mean, the pseudo-gradient and the step.

The mean and the pseudo-gradient are the sums through which a ``linear`` rule reads its clients. Both
are one :class:`MeanFold`, which adds one client at a time (so a round can be folded as its fits return)
in float64 and casts back at the end, so results do not depend on the adapter's dtype more than they
must, nor on whether the clients were folded as they came or all at once. Adapters that arrive as one
flat buffer (:class:`~fedray.flat.FlatState`) are added in one operation over the whole buffer instead
of one per tensor: the same element-wise arithmetic, so the same bits. That sum is numpy's where numpy
has the adapter's dtype (:class:`FlatSum`), and a plain mean of flat buffers comes back as one, so
FedAvg's aggregator process never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Sequence

import numpy as np

from fedray.flat import FlatState, numpy_dtype
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
        self.sums: dict[str, torch.Tensor] | None = None  # float64, per tensor (views of _flat's sum)
        self.dtypes: dict[str, torch.dtype] = {}
        self.count = 0
        self._flat: FlatSum | None = None  # the whole-buffer sum, see _start_flat

    def add(self, state: State) -> None:
        """Fold in the next state with its weight."""
        if self.count >= len(self.weights):
            raise ValueError(f"MeanFold has {len(self.weights)} weights; a state beyond them was added")
        share = self.weights[self.count] / self.total
        if self.count == 0:
            self._start(state)
        if self._flat is not None and self._flat.takes(state):  # all tensors at once
            self._flat.add(state, share)
        else:
            sums, center64 = self._per_tensor()
            for key, acc in sums.items():
                x = state[key].to(torch.float64)
                acc += (x if center64 is None else x - center64[key]) * share
        self.count += 1

    def _start(self, state: State) -> None:
        if self._start_flat(state):
            return
        keys = list(state.keys() if self.center is None else self.center.keys())
        self.dtypes = {k: state[k].dtype for k in keys}
        self.sums = {k: torch.zeros_like(state[k], dtype=torch.float64) for k in keys}
        if self.center is not None:
            self._center64 = {k: x.to(torch.float64) for k, x in self.center.items()}

    def _start_flat(self, state: State) -> bool:
        """One float64 sum over the whole buffer when the states (and the center) are FlatStates of
        one layout and one dtype."""
        center = self.center
        same_center = center is None or (isinstance(center, FlatState) and center.layout == state.layout)
        if not isinstance(state, FlatState) or state.layout.dtype is None or not same_center:
            return False
        self._flat = FlatSum(state, center)
        return True

    def _per_tensor(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        """The per-tensor float64 sums (and center), for a state that is not added as a whole buffer."""
        if self.sums is None:  # a flat fold met a state of another form: views of its sum
            self.sums, self._center64 = self._flat.tensors()
            self.dtypes = {slot.key: slot.torch_dtype for slot in self._flat.layout.slots}
        return self.sums, self._center64

    def mean(self) -> Mapping[str, torch.Tensor]:
        """Σ_k (w_k/W)·x_k, each tensor cast back to the first state's dtype; a FlatState in the states'
        layout when they were added as whole buffers (computed without torch where numpy can)."""
        self._check_added()
        if self._flat is not None and self.sums is None:
            return self._flat.mean()
        return {key: acc.to(self.dtypes[key]) for key, acc in self._per_tensor()[0].items()}

    def update(self) -> Mapping[str, torch.Tensor]:
        """Δ = Σ_k (w_k/W)·(x_k − x), in :func:`state_dtype` of each global tensor; a FlatState in the
        states' layout when they were added as whole numpy buffers already of that dtype."""
        if self.center is None:
            raise ValueError("MeanFold.update needs the global state as the center")
        self._check_added()
        if self._flat is not None and self.sums is None and self._flat.numpy and \
                self._flat.layout.dtype in SERVER_DTYPES:  # already the state dtype: stays flat
            return FlatState.from_array(self._flat.layout, self._flat.acc.astype(self._flat.layout.dtype))
        sums = self._per_tensor()[0]
        return {key: acc.to(state_dtype(self.center[key].dtype)) for key, acc in sums.items()}

    def _check_added(self) -> None:
        if self.count == 0:
            raise ValueError("no state was added to the MeanFold")


class FlatSum:
    """A float64 sum over whole FlatState buffers of one layout (padding included: zeros).

    In numpy where numpy has the layout's dtype, so the aggregator's FedAvg never imports torch; in
    torch for bfloat16. Both do the same element-wise float64 arithmetic in the same order (widen,
    subtract the center, multiply by the share, add), so they give the same bits.
    """

    def __init__(self, first: FlatState, center: FlatState | None) -> None:
        self.layout = first.layout
        self.numpy = first.typed_array() is not None
        if self.numpy:
            self.acc: Any = np.zeros(first.typed_array().size, dtype=np.float64)  # (n,)
            self.center64: Any = None if center is None else center.typed_array().astype(np.float64)
        else:
            self.acc = torch.zeros(first.typed().numel(), dtype=torch.float64)  # (n,)
            self.center64 = None if center is None else center.typed().to(torch.float64)

    def takes(self, state: State) -> bool:
        """Whether ``state`` can be added as one buffer."""
        return isinstance(state, FlatState) and state.layout == self.layout

    def add(self, state: FlatState, share: float) -> None:
        """acc += (x − c)·share over the whole buffer (x widened to float64 first)."""
        if self.numpy:
            x = state.typed_array().astype(np.float64)
            if self.center64 is not None:
                np.subtract(x, self.center64, out=x)
            x *= share
            self.acc += x
        else:
            x = state.typed().to(torch.float64)
            self.acc += (x if self.center64 is None else x - self.center64) * share

    def mean(self) -> FlatState:
        """The sum cast back to the layout's dtype (rounded as torch's ``.to`` rounds), as a FlatState."""
        if not self.numpy:
            flat = FlatState.empty(self.layout)
            flat.typed().copy_(self.acc)  # (n,) float64 → the layout's dtype, as ``.to`` casts
            return flat
        return FlatState.from_array(self.layout, cast_like_torch(self.acc, numpy_dtype(self.layout.dtype)))

    def tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        """The sum (and the float64 center) as per-tensor torch views of the whole buffer."""
        acc = torch.from_numpy(self.acc) if self.numpy else self.acc
        center = torch.from_numpy(self.center64) if self.numpy and self.center64 is not None \
            else self.center64
        return self._split(acc), None if center is None else self._split(center)

    def _split(self, whole: torch.Tensor) -> dict[str, torch.Tensor]:
        return {slot.key: whole[self.layout.element(slot)].view(slot.shape) for slot in self.layout.slots}


def cast_like_torch(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 ``values`` as ``dtype``, rounded to nearest as torch's ``.to(dtype)`` rounds: float16
    goes through float32 (torch converts a double to half via float), so the bits match torch's."""
    if dtype == np.float16:
        return values.astype(np.float32).astype(np.float16)
    return values.astype(dtype)


class MeanAccumulator(Accumulator):
    """The usual linear rule's fold: one :class:`MeanFold` over the clients' params, then the rule's step."""

    def __init__(self, fold: MeanFold, finish: Callable[[MeanFold], Aggregate]) -> None:
        self.fold = fold
        self._finish = finish

    def add(self, result: ClientResult) -> None:
        self.fold.add(result.params)

    def finish(self) -> Aggregate:
        return self._finish(self.fold)


def weighted_mean(states: Sequence[State], weights: Sequence[float]) -> Mapping[str, torch.Tensor]:
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


def apply_update(global_state: State, step: State, scale: float = 1.0) -> Mapping[str, torch.Tensor]:
    """x + scale · step per tensor, computed in float64 and cast back to each global tensor's dtype
    (over whole numpy buffers, and a FlatState, when both are numpy FlatStates of one layout)."""
    if _flat_arrays(global_state, step):
        x = global_state.typed_array()
        moved = x.astype(np.float64) + scale * step.typed_array().astype(np.float64)
        return FlatState.from_array(global_state.layout, cast_like_torch(moved, x.dtype))
    return {key: (x.to(torch.float64) + scale * step[key].to(torch.float64)).to(x.dtype)
            for key, x in global_state.items()}


#: Adapter dtypes whose server state (pseudo-gradient, moments) has the adapter's own dtype
#: (:func:`state_dtype`), so the state can share the adapter's flat layout.
SERVER_DTYPES = ("float32", "float64")


def elementwise(fn: Callable[..., Any], *states: State) -> Mapping[str, torch.Tensor]:
    """``fn`` applied to the states' values: once over whole numpy buffers when every state is a numpy
    FlatState of one layout (a FlatState comes back), else tensor by tensor in the first state's key
    order (a dict). ``fn`` may use only the arithmetic operators, which are exactly rounded on either
    (a Python scalar takes the array's dtype in both), so both forms give the same bits; not ``sqrt``
    and the like, whose torch CPU kernels are not always correctly rounded (the FedOpt family's step
    therefore stays in torch, tensor by tensor)."""
    first = states[0]
    if _flat_arrays(*states):
        values = fn(*(state.typed_array() for state in states))
        return FlatState.from_array(first.layout, values if values.flags.owndata else values.copy())
    return {key: fn(*(state[key] for state in states)) for key in first}


def _flat_arrays(*states: State) -> bool:
    """Whether every state is a FlatState of the first one's layout that numpy can read."""
    first = states[0]
    return isinstance(first, FlatState) and first.typed_array() is not None and \
        all(isinstance(state, FlatState) and state.layout == first.layout for state in states[1:])
