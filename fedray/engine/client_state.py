"""The client-state store: what a virtual client keeps between its fits, outside any actor.

Client actors serve many virtual clients in turn, so a client's persistent state (SCAFFOLD's control
variate, the local baseline's own adapter) lives here, keyed by client id, never in actor attributes.
At most ``max_in_memory`` clients' states stay in memory (least recently used go first); the rest live
in ``spill_dir``, one file per client, so memory stays flat in the number of clients.

Each file is written once, under a new name (``client-<id>-<version>.pt``), so a checkpoint can name
the files that hold the states instead of copying them (:meth:`ClientStateStore.checkpoint_index`
writes only the states changed since the last one): its cost follows the clients of the last rounds,
not all clients. A file the latest checkpoint names is kept until a newer checkpoint no longer does.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fedray.engine.files import write_atomically
from fedray.errors import FedRayError
from fedray.flat import FlatState
from fedray.lazy import lazy_import

torch = lazy_import("torch")  # imported when a state file is written or read (the aggregator starts without)

_NAME = re.compile(r"^client-(\d+)-(\d+)\.pt$")


class ClientStateStore:
    """Client id → a dict of named values (tensors on CPU)."""

    def __init__(self, spill_dir: str | Path | None = None, max_in_memory: int | None = None) -> None:
        if max_in_memory is not None and spill_dir is None:
            raise ValueError("a memory cap needs a spill directory")
        self._memory: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._dirty: set[int] = set()  # in memory and newer than their file (or with none)
        self._files: dict[int, dict[str, Any]] = {}  # client → {"file", "size"}: its latest file
        self._pinned: set[str] = set()  # files the latest checkpoint names
        self._version = 0
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self.max_in_memory = max_in_memory

    def get(self, client_id: int) -> dict[str, Any] | None:
        """The client's state, or None before its first fit."""
        if client_id in self._memory:
            self._memory.move_to_end(client_id)
            return self._memory[client_id]
        if client_id in self._files:
            state = self._read(self._files[client_id])
            self._keep(client_id, state, dirty=False)
            return state
        return None

    def update(self, client_id: int, **values: Any) -> None:
        state = dict(self.get(client_id) or {})
        state.update(values)
        self._keep(client_id, state, dirty=True)

    def __len__(self) -> int:
        return len(set(self._memory) | set(self._files))

    @property
    def in_memory(self) -> int:
        return len(self._memory)

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint_index(self) -> dict[int, dict[str, Any]]:
        """Write the states changed since the last call; return client → the file holding its state
        (what a checkpoint stores). Call :meth:`committed` once the checkpoint is on disk."""
        for client_id in sorted(self._dirty):
            self._write(client_id, self._memory[client_id])
        self._dirty.clear()
        return {cid: dict(entry) for cid, entry in sorted(self._files.items())}

    def committed(self, index: dict[int, dict[str, Any]]) -> None:
        """The checkpoint naming ``index`` is written: remove every state file it does not name."""
        self._pinned = {entry["file"] for entry in index.values()}
        if self.spill_dir is not None and self.spill_dir.is_dir():
            for path in self.spill_dir.glob("client-*.pt"):
                if path.name not in self._pinned:
                    path.unlink(missing_ok=True)

    def load_index(self, index: dict[int, dict[str, Any]]) -> None:
        """Continue from a checkpoint's index; each state is read when first asked for."""
        self._memory.clear()
        self._dirty.clear()
        self._files = {int(cid): dict(entry) for cid, entry in index.items()}
        self._pinned = {entry["file"] for entry in self._files.values()}
        existing = [_NAME.match(p.name) for p in self.spill_dir.glob("client-*.pt")] \
            if self.spill_dir is not None and self.spill_dir.is_dir() else []
        self._version = max((int(m.group(2)) + 1 for m in existing if m), default=0)

    def state_dict(self) -> dict[int, dict[str, Any]]:
        """Every client's state (files read back): the inline form of checkpoint format 1."""
        out = {cid: self._read(entry) for cid, entry in self._files.items()}
        out.update({cid: dict(values) for cid, values in self._memory.items()})
        return out

    def load_state_dict(self, state: dict[int, dict[str, Any]]) -> None:
        self._memory.clear()
        self._dirty.clear()
        self._files.clear()
        for cid, values in state.items():
            self._keep(int(cid), dict(values), dirty=True)

    # -- memory and files -------------------------------------------------------------------------
    def _keep(self, client_id: int, state: dict[str, Any], dirty: bool) -> None:
        self._memory[client_id] = state
        self._memory.move_to_end(client_id)
        if dirty:
            self._dirty.add(client_id)
        while self.max_in_memory is not None and len(self._memory) > self.max_in_memory:
            cid, old = self._memory.popitem(last=False)
            if cid in self._dirty:  # a clean one is already in its file
                self._write(cid, old)
                self._dirty.discard(cid)

    def _write(self, client_id: int, state: dict[str, Any]) -> None:
        if self.spill_dir is None:
            raise ValueError("writing client states needs a spill directory")
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"client-{client_id}-{self._version}.pt"
        self._version += 1
        # A FlatState (the local baseline's adapters) is saved as plain tensors, which load back safely.
        plain = {k: v.to_dict() if isinstance(v, FlatState) else v for k, v in state.items()}
        write_atomically(path, lambda tmp: torch.save(plain, tmp))
        previous = self._files.get(client_id)
        self._files[client_id] = {"file": path.name, "size": path.stat().st_size}
        if previous is not None and previous["file"] not in self._pinned:
            (self.spill_dir / previous["file"]).unlink(missing_ok=True)

    def _read(self, entry: dict[str, Any]) -> dict[str, Any]:
        path = Path(self.spill_dir or ".") / entry["file"]
        if not self._sized(path, entry.get("size")):
            raise FedRayError(f"client state {path} is missing or changed since it was written; restore "
                              "the run directory from a copy, or start the run again")
        try:
            return torch.load(path, weights_only=True)
        except Exception as exc:  # a damaged file: say which
            raise FedRayError(f"client state {path} cannot be read ({type(exc).__name__}); restore the "
                              "run directory from a copy, or start the run again") from None

    @staticmethod
    def _sized(path: Path, size: int | None) -> bool:
        try:
            return size is None or path.stat().st_size == size
        except OSError:
            return False
