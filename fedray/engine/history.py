"""``history.jsonl``: one JSON object per round, appended and flushed as the round ends.

A crashed run keeps every completed round readable; round 0 (when present) is the evaluation of the
initial global model before any training.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedray.engine.observers import RoundObserver


@dataclass
class RoundRecord:
    server_round: int
    clients: list[int] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    system: dict[str, list[int]] = field(default_factory=dict)  # simulated: unavailable, dropped, slow
    train_loss: float | None = None
    eval: dict[str, float] = field(default_factory=dict)  # test metrics (see engine.evaluation)
    validation: dict[str, float] = field(default_factory=dict)
    client_eval: dict[int, dict[str, float]] = field(default_factory=dict)  # local baseline, per client
    time_s: dict[str, float] = field(default_factory=dict)
    compute_s: float = 0.0  # client compute seconds summed over the round's fits
    memory_mb: dict[str, float] = field(default_factory=dict)  # actor_peak (max over fits), driver_peak
    bytes_sent: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    aggregate: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> RoundRecord:
        """The inverse of :meth:`to_json` (JSON's string keys of ``client_eval`` become ints again)."""
        fields = {k: v for k, v in record.items() if k != "round"}
        fields["client_eval"] = {int(k): v for k, v in fields.get("client_eval", {}).items()}
        return cls(server_round=record["round"], **fields)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["round"] = record.pop("server_round")
        return _finite(record)


def _finite(value: Any) -> Any:
    # JSON has no NaN/inf; a diverged loss is written as null rather than producing invalid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class HistoryWriter(RoundObserver):
    """Appends round records to ``path``: every completed round, and the round that ended a failed run
    (so what went wrong stays readable)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_round(self, record: RoundRecord) -> None:
        self.append(record)

    def on_failed_round(self, record: RoundRecord) -> None:
        self.append(record)

    def append(self, record: RoundRecord) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record.to_json(), sort_keys=True) + "\n")
            handle.flush()


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """All round records of a run, in order."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
