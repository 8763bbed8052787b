"""Deciding, before Ray starts and before anything is written, whether and how a run can be resumed.

:func:`plan_resume` reads the run directory's checkpoint (without torch: see
:func:`~fedray.engine.checkpoint.inspect_checkpoint`), its history and its config together and returns a
:class:`ResumePlan`, or raises a :class:`~fedray.errors.FedRayError` that names the file and the fix. A
finished run is recognised at once (nothing to resume); a history whose last line was cut by a kill is
repaired (the line is dropped when the resumed run writes its first round, with a message now).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedray.engine.checkpoint import CHECKPOINT_FILE, CheckpointError, inspect_checkpoint
from fedray.engine.history import HistoryError, scan_history
from fedray.errors import FedRayError

logger = logging.getLogger(__name__)


class FinishedRunError(FedRayError):
    """Resuming a finished run that has no checkpoint (``federation.checkpoint_every: 0``): nothing to do.
    The CLI says so and exits 0; a finished run with a checkpoint gives ``ResumePlan.finished``."""


@dataclass
class ResumePlan:
    """How a resume goes on: after ``checkpoint_round``, with the history's records up to it."""

    run_path: Path
    checkpoint_round: int | None  # None when finished
    records: list[dict[str, Any]]  # the history's records the checkpoint covers (all, when finished)
    driver: dict[str, Any] = field(default_factory=dict)
    finished: bool = False
    best_round: int | None = None  # a finished run's, from summary.json
    notes: list[str] = field(default_factory=list)  # repairs made, said to the user


def config_fingerprint(config_path: Path) -> str:
    """The SHA-256 of ``config.yaml``: a checkpoint records it, so a changed config is caught."""
    return hashlib.sha256(Path(config_path).read_bytes()).hexdigest()


def plan_resume(run_path: Path, last_round: int, client_state_dir: Path | None = None) -> ResumePlan:
    """Check checkpoint, history and config of ``run_path`` together (``last_round``: the run mode's
    last round under its config.yaml); see the module docstring."""
    run_path = Path(run_path)
    history_path = run_path / "history.jsonl"
    try:
        scan = scan_history(history_path)
    except HistoryError as exc:
        raise FedRayError(f"cannot resume {run_path}: {exc}") from None
    notes = []
    if scan.cut_last_line:
        notes.append(f"{history_path}: its last line was cut short (the run was stopped while writing "
                     "it); it is dropped and that round redone")
    finished = _finished(run_path, scan.records, last_round)
    if finished is not None and not (run_path / CHECKPOINT_FILE).exists():
        raise FinishedRunError(f"{run_path} has finished all its rounds (its results: "
                               f"{run_path / 'summary.json'}) and has no {CHECKPOINT_FILE} to resume from: "
                               "there is nothing to resume")
    if finished is not None:
        return ResumePlan(run_path, None, scan.records, finished=True, best_round=finished, notes=notes)
    try:
        info = inspect_checkpoint(run_path)
    except CheckpointError as exc:
        raise FedRayError(f"cannot resume {run_path}: {exc}") from None
    _check_against_config(run_path, info.round, info.driver, last_round)
    _check_history(history_path, scan.records, info.round)
    if client_state_dir is not None:
        _check_client_files(client_state_dir, info.client_files)
    kept = [r for r in scan.records if r["round"] <= info.round]
    if len(kept) < len(scan.records):
        later = sorted({r["round"] for r in scan.records if r["round"] > info.round})
        notes.append(f"rounds {later[0]}–{later[-1]} of {history_path.name} came after the last checkpoint "
                     f"(round {info.round}): they are redone" if len(later) > 1 else
                     f"round {later[0]} of {history_path.name} came after the last checkpoint (round "
                     f"{info.round}): it is redone")
    return ResumePlan(run_path, info.round, kept, driver=info.driver, notes=notes)


def _finished(run_path: Path, records: list[dict[str, Any]], last_round: int) -> int | None | bool:
    """The best round of a finished run (``summary.json`` written after its last round; True when it
    has none), or None when the run is not finished."""
    summary_path = run_path / "summary.json"
    if not records or records[-1]["round"] != last_round or not summary_path.exists():
        return None
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None  # a damaged summary: the final save is redone from the checkpoint
    if not isinstance(summary, dict) or summary.get("rounds_completed") != last_round:
        return None
    best = summary.get("best_round")
    return best if isinstance(best, int) else True


def _check_against_config(run_path: Path, checkpoint_round: int, driver: dict[str, Any],
                          last_round: int) -> None:
    config = run_path / "config.yaml"
    if checkpoint_round > last_round:
        raise FedRayError(f"cannot resume {run_path}: its {CHECKPOINT_FILE} is at round {checkpoint_round} "
                          f"but {config} runs {last_round} rounds; restore the config.yaml the run was "
                          "started with")
    expected = driver.get("config_sha256")
    if expected is not None and expected != config_fingerprint(config):
        raise FedRayError(f"cannot resume {run_path}: {config} changed after the checkpoint was written; "
                          "a resumed run must use the config it started with (restore it), or start a new "
                          "run with the new config")


def _check_history(history_path: Path, records: list[dict[str, Any]], checkpoint_round: int) -> None:
    trained = [r["round"] for r in records if 1 <= r["round"] <= checkpoint_round]
    if trained != list(range(1, checkpoint_round + 1)):
        have = f"rounds {trained[0]}–{trained[-1]}" if trained else "no trained round"
        raise FedRayError(f"cannot resume {history_path.parent}: the checkpoint is at round "
                          f"{checkpoint_round} but {history_path.name} holds {have}; the history does not "
                          "match the checkpoint: restore both from the same copy, or start the run again")


def _check_client_files(state_dir: Path, files: dict[int, dict[str, Any]]) -> None:
    bad = []
    for entry in files.values():
        path = Path(state_dir) / entry["file"]
        try:
            if path.stat().st_size != entry.get("size", path.stat().st_size):
                bad.append(entry["file"])
        except OSError:
            bad.append(entry["file"])
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise FedRayError(f"cannot resume {state_dir.parent}: the checkpoint names client-state files that "
                          f"are missing or changed in {state_dir}: {shown}; restore the run directory from "
                          "a copy, or start the run again")
