"""The client-state store: what a virtual client keeps between its fits, outside any actor.

Client actors serve many virtual clients in turn, so a client's persistent state (SCAFFOLD's control
variate, the local baseline's own adapter) lives here, keyed by client id, never in actor attributes.
"""

from __future__ import annotations

from typing import Any


class ClientStateStore:
    """Client id → a dict of named values (tensors on CPU)."""

    def __init__(self) -> None:
        self._states: dict[int, dict[str, Any]] = {}

    def get(self, client_id: int) -> dict[str, Any] | None:
        """The client's state, or None before its first fit."""
        return self._states.get(client_id)

    def update(self, client_id: int, **values: Any) -> None:
        self._states.setdefault(client_id, {}).update(values)

    def __len__(self) -> int:
        return len(self._states)

    def state_dict(self) -> dict[int, dict[str, Any]]:
        return {cid: dict(values) for cid, values in self._states.items()}

    def load_state_dict(self, state: dict[int, dict[str, Any]]) -> None:
        self._states = {int(cid): dict(values) for cid, values in state.items()}
