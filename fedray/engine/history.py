"""``history.jsonl``: one JSON object per round, appended and flushed as the round ends.

A crashed run keeps every completed round readable; round 0 (when present) is the evaluation of the
initial global model before any training. A run killed while appending leaves a cut last line (no
newline at its end): readers skip it with a warning and a resume drops it; a bad line anywhere else is a
damaged file, reported with its line number. A resumed run keeps the rounds its checkpoint covers: its
writer drops the later ones (to be redone) when it appends its first round, not before, so a resume that
fails early changes nothing.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedray.engine.files import RunDirWriteError, describe_os_error, write_atomically
from fedray.engine.observers import RoundObserver
from fedray.errors import FedRayError

logger = logging.getLogger(__name__)


class HistoryError(FedRayError):
    """``history.jsonl`` is missing or damaged."""


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
    time_s: dict[str, float] = field(default_factory=dict)  # fit, aggregate, eval; checkpoint: the one
    # written after the previous round (the round's own checkpoint follows its record)
    compute_s: float = 0.0  # client compute seconds summed over the round's fits
    memory_mb: dict[str, float] = field(default_factory=dict)  # actor_peak (max over fits), driver_peak
    bytes_sent: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    aggregate: dict[str, float] = field(default_factory=dict)
    retries: list[dict[str, Any]] = field(default_factory=list)  # fits redone after their actor died

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
    (so what went wrong stays readable).

    With ``keep_through`` (a resumed run: its checkpoint's round) the first append first rewrites the file
    with the records up to that round only: the later ones were written after the checkpoint and are
    being redone (a cut last line goes with them).
    """

    def __init__(self, path: Path, keep_through: int | None = None) -> None:
        self.path = Path(path)
        self.keep_through = keep_through

    def on_round(self, record: RoundRecord) -> None:
        self.append(record)

    def on_failed_round(self, record: RoundRecord) -> None:
        self.append(record)

    def append(self, record: RoundRecord) -> None:
        if self.keep_through is not None:
            _keep_through(self.path, self.keep_through)
            self.keep_through = None
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record.to_json(), sort_keys=True) + "\n")
                handle.flush()
        except OSError as exc:  # at worst a cut last line, which a resume repairs
            raise RunDirWriteError(self.path, describe_os_error(exc)) from exc


def _keep_through(path: Path, last_round: int) -> None:
    """Rewrite ``path`` (atomically) with its records up to ``last_round``."""
    kept = [r for r in scan_history(path).records if r["round"] <= last_round] if path.exists() else []
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@dataclass
class HistoryScan:
    """What ``history.jsonl`` holds: its complete records, and whether its last line was cut."""

    records: list[dict[str, Any]]
    cut_last_line: bool = False


def scan_history(path: str | Path) -> HistoryScan:
    """Every record of ``path``; a cut last line (a run killed mid-write) is left out and flagged, any
    other unreadable line is a :class:`HistoryError` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HistoryError(f"{path} does not exist: this is not a run directory, or its history was "
                           "deleted") from None
    except OSError as exc:
        raise HistoryError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    records, cut = [], False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict) or not isinstance(record.get("round"), int):
                raise ValueError("not a round record")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if number == len(lines):  # no newline after it: the write was cut short
                cut = True
                continue
            raise HistoryError(f"{path}, line {number}: not a round record ({_short(exc)}); the file is "
                               "damaged: restore it from a copy, or delete that line and the ones after it "
                               "(and resume the run)") from None
        records.append(record)
    return HistoryScan(records, cut)


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """All round records of a run, in order (a cut last line is skipped, with a warning)."""
    scan = scan_history(path)
    if scan.cut_last_line:
        logger.warning("%s: its last line was cut short (the run was stopped while writing it); "
                       "ignoring that line", path)
    return scan.records


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 80 else text[:77] + "..."
