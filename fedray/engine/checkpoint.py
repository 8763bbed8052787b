"""Checkpoints: everything needed to continue a run exactly, written atomically every few rounds.

A checkpoint holds the round index, the aggregator's state (global adapter, strategy state, and an index
of the client-state files: :mod:`fedray.engine.client_state` keeps each client's state in a file written
once, which the checkpoint names instead of copying) and the driver's model-selection state. Client
sampling, batch order, dropout and DP noise are pure functions of (seed, round, client), so no RNG state
needs saving: a resumed run replays the same draws and writes the same history as an uninterrupted one
(timings aside).

The aggregator actor writes and reads them (it holds the tensors). The driver, which imports no torch,
checks one before it starts Ray (:func:`inspect_checkpoint`): the archive's checksums, and its pickle read
by an unpickler that knows only tensors, dicts and plain values (a file asking for anything else is
refused, never run), so a damaged or foreign file is reported before anything is written.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fedray.engine.files import write_atomically
from fedray.errors import FedRayError

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 2  # 2: client states referenced by file name; 1: client states inline
READABLE_FORMATS = (1, 2)


class CheckpointError(FedRayError):
    """A run directory's checkpoint is missing, damaged or not fedray's."""


def save_checkpoint(run_path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (round, aggregator, driver) as ``checkpoint.pt``: write, then rename."""
    import torch

    path = Path(run_path) / CHECKPOINT_FILE
    return write_atomically(path, lambda tmp: torch.save({"format": FORMAT, **payload}, tmp))


def require_checkpoint(run_path: Path) -> Path:
    """The run directory's checkpoint file, or a clear error when there is none."""
    path = Path(run_path) / CHECKPOINT_FILE
    if not path.exists():
        raise CheckpointError(f"{run_path} has no {CHECKPOINT_FILE} to resume from; was "
                              "federation.checkpoint_every 0, or did the run stop before its first "
                              "checkpoint?")
    return path


def load_checkpoint(run_path: Path) -> dict[str, Any]:
    """The latest checkpoint of a run directory (with its tensors), or a :class:`CheckpointError`."""
    import torch

    path = require_checkpoint(run_path)
    inspect_checkpoint(run_path)  # a clear message before torch's own
    try:
        return torch.load(path, weights_only=True)
    except Exception as exc:  # what torch says about a damaged file names no fix
        raise CheckpointError(f"{path} cannot be read ({type(exc).__name__}); {_FIX}") from None


_FIX = ("restore it from a copy, or start the run again (fedray run SCENARIO --run-dir NEW_DIR)")


@dataclass(frozen=True)
class CheckpointInfo:
    """What the driver learns from a checkpoint without loading a tensor."""

    path: Path
    round: int
    driver: dict[str, Any]
    client_files: dict[int, dict[str, Any]]  # client id → {"file", "size"}; empty in format 1


def inspect_checkpoint(run_path: Path) -> CheckpointInfo:
    """Check ``checkpoint.pt`` without torch: a complete archive, a pickle of tensors and plain values
    only, fedray's structure. Raises :class:`CheckpointError` naming what is wrong."""
    path = require_checkpoint(run_path)
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            if damaged is not None:
                raise CheckpointError(f"{path} is damaged (entry {damaged} fails its checksum); {_FIX}")
            names = set(archive.namelist())
            pickles = [n for n in names if n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise CheckpointError(f"{path} is not a checkpoint fedray wrote (no data.pkl); {_FIX}")
            payload = _TensorFreeUnpickler(archive.read(pickles[0]), pickles[0][:-len("data.pkl")],
                                           names).load()
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} is empty, cut short or not a checkpoint ({_reason(exc)}); "
                              f"{_FIX}") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a checkpoint fedray wrote ({_reason(exc)}); {_FIX}") from None
    return _checked_structure(path, payload)


def _checked_structure(path: Path, payload: Any) -> CheckpointInfo:
    problems = []
    if not isinstance(payload, dict):
        problems.append("it does not hold a mapping")
        payload = {}
    if payload.get("format") not in READABLE_FORMATS:
        problems.append(f"format {payload.get('format')!r}, expected one of {READABLE_FORMATS}")
    if not isinstance(payload.get("round"), int) or payload.get("round", -1) < 0:
        problems.append(f"round {payload.get('round')!r} is not a round number")
    aggregator, driver = payload.get("aggregator"), payload.get("driver")
    if not isinstance(aggregator, dict) or not {"global_state", "strategy", "clients"} <= set(aggregator):
        problems.append("no aggregator state (global_state, strategy, clients)")
    if not isinstance(driver, dict):
        problems.append("no driver state")
    if problems:
        raise CheckpointError(f"{path} is not a checkpoint fedray wrote: {'; '.join(problems)}; {_FIX}")
    clients = aggregator["clients"]
    files = {}
    if payload["format"] >= 2:
        if not isinstance(clients, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("file"), str) for v in clients.values()):
            raise CheckpointError(f"{path}: its client-state index is malformed; {_FIX}")
        files = {int(k): v for k, v in clients.items()}
    return CheckpointInfo(path, payload["round"], driver, files)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 100 else text[:97] + "..."


class _TensorStub:
    """Where a tensor stands in a checkpoint read without torch."""


class _TensorFreeUnpickler(pickle.Unpickler):
    """Reads a ``torch.save`` pickle with tensors replaced by stubs; refuses any other class or call."""

    _TORCH = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter")}

    def __init__(self, data: bytes, prefix: str, names: set[str]) -> None:
        super().__init__(io.BytesIO(data))
        self.prefix, self.names = prefix, names

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._TORCH:
            return lambda *args: _TensorStub()
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch" and (name.endswith("Storage") or name in _DTYPES):
            return _TensorStub
        raise pickle.UnpicklingError(f"it asks to load {module}.{name}, which a checkpoint never holds "
                                     "(refused, not run)")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and len(pid) >= 3):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        if f"{self.prefix}data/{pid[2]}" not in self.names:
            raise pickle.UnpicklingError(f"tensor data {pid[2]} is missing from the archive")
        return _TensorStub()


_DTYPES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool"}


def write_adapter(run_path: Path, state: Mapping[str, Any], name: str,
                  config: Mapping[str, Any] | None = None) -> Path:
    """Write an adapter as the PEFT adapter directory ``<run_path>/<name>/`` (weights, and PEFT's
    ``adapter_config.json`` when ``config`` is given; see :mod:`fedray.engine.adapter_files`)."""
    from fedray.engine.adapter_files import write_adapter_dir

    return write_adapter_dir(Path(run_path) / name, state, config)
