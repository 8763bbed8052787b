"""Checkpoints: everything needed to continue a run exactly, written atomically every few rounds.

A checkpoint holds the round index, the aggregator's state (global adapter, strategy state, client-state
store) and the driver's model-selection state. Client sampling, batch order, dropout and DP noise are
pure functions of (seed, round, client), so no RNG state needs saving: a resumed run replays the same
draws and writes the same history as an uninterrupted one (timings aside).

The aggregator actor writes and reads them (it holds the tensors); the driver only checks that one is
there and trims the history, so this module imports torch only where a file is written or read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from fedray.engine.history import read_history
from fedray.errors import FedRayError

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1


def save_checkpoint(run_path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (round, aggregator, driver) as ``checkpoint.pt``: write, then rename."""
    import torch

    path = Path(run_path) / CHECKPOINT_FILE
    tmp = path.with_suffix(".tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)
    return path


def require_checkpoint(run_path: Path) -> Path:
    """The run directory's checkpoint file, or a clear error when there is none."""
    path = Path(run_path) / CHECKPOINT_FILE
    if not path.exists():
        raise FedRayError(f"{run_path} has no {CHECKPOINT_FILE} to resume from; was "
                          "federation.checkpoint_every 0, or did the run stop before its first checkpoint?")
    return path


def load_checkpoint(run_path: Path) -> dict[str, Any]:
    """The latest checkpoint of a run directory, with a clear error when there is none."""
    import torch

    path = require_checkpoint(run_path)
    payload = torch.load(path, weights_only=True)
    if payload.get("format") != FORMAT:
        raise FedRayError(f"{path} has checkpoint format {payload.get('format')}, expected {FORMAT}")
    return payload


def truncate_history(history_path: Path, last_round: int) -> list[dict[str, Any]]:
    """Drop records after ``last_round`` (written after the checkpoint, to be redone); return the rest."""
    if not Path(history_path).exists():
        return []
    kept = [r for r in read_history(history_path) if r["round"] <= last_round]
    tmp = Path(history_path).with_suffix(".tmp")
    import json

    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept), encoding="utf-8")
    os.replace(tmp, history_path)
    return kept


def write_adapter(run_path: Path, state: Mapping[str, Any], name: str,
                  config: Mapping[str, Any] | None = None) -> Path:
    """Write an adapter as the PEFT adapter directory ``<run_path>/<name>/`` (weights, and PEFT's
    ``adapter_config.json`` when ``config`` is given; see :mod:`fedray.engine.adapter_files`)."""
    from fedray.engine.adapter_files import write_adapter_dir

    return write_adapter_dir(Path(run_path) / name, state, config)
