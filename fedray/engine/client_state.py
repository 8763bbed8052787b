"""The client-state store: what a virtual client keeps between its fits, outside any actor.

Client actors serve many virtual clients in turn, so a client's persistent state (SCAFFOLD's control
variate, the local baseline's own adapter) lives here, keyed by client id, never in actor attributes.
At most ``max_in_memory`` clients' states stay in memory (least recently used go first); the rest are
spilled to ``spill_dir`` as one file per client, so memory stays flat in the number of clients.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from fedray.flat import FlatState


class ClientStateStore:
    """Client id → a dict of named values (tensors on CPU)."""

    def __init__(self, spill_dir: str | Path | None = None, max_in_memory: int | None = None) -> None:
        if max_in_memory is not None and spill_dir is None:
            raise ValueError("a memory cap needs a spill directory")
        self._memory: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._spilled: set[int] = set()
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self.max_in_memory = max_in_memory

    def get(self, client_id: int) -> dict[str, Any] | None:
        """The client's state, or None before its first fit."""
        if client_id in self._memory:
            self._memory.move_to_end(client_id)
            return self._memory[client_id]
        if client_id in self._spilled:
            state = torch.load(self._path(client_id), weights_only=True)
            self._spilled.discard(client_id)
            self._keep(client_id, state)
            return state
        return None

    def update(self, client_id: int, **values: Any) -> None:
        state = dict(self.get(client_id) or {})
        state.update(values)
        self._keep(client_id, state)

    def __len__(self) -> int:
        return len(self._memory) + len(self._spilled)

    @property
    def in_memory(self) -> int:
        return len(self._memory)

    def state_dict(self) -> dict[int, dict[str, Any]]:
        """Every client's state (spilled ones read back), for a checkpoint."""
        out = {cid: dict(values) for cid, values in self._memory.items()}
        out.update({cid: torch.load(self._path(cid), weights_only=True) for cid in self._spilled})
        return out

    def load_state_dict(self, state: dict[int, dict[str, Any]]) -> None:
        self._memory.clear()
        self._spilled.clear()
        for cid, values in state.items():
            self._keep(int(cid), dict(values))

    def _keep(self, client_id: int, state: dict[str, Any]) -> None:
        self._memory[client_id] = state
        self._memory.move_to_end(client_id)
        while self.max_in_memory is not None and len(self._memory) > self.max_in_memory:
            cid, old = self._memory.popitem(last=False)
            self._spill(cid, old)

    def _spill(self, client_id: int, state: dict[str, Any]) -> None:
        path = self._path(client_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        # A FlatState (the local baseline's adapters) is saved as plain tensors, which load back safely.
        torch.save({k: v.to_dict() if isinstance(v, FlatState) else v for k, v in state.items()}, tmp)
        os.replace(tmp, path)
        self._spilled.add(client_id)

    def _path(self, client_id: int) -> Path:
        # Only reached with a spill_dir: __init__ requires one whenever a memory cap is set.
        return Path(self.spill_dir or ".") / f"client-{client_id}.pt"
