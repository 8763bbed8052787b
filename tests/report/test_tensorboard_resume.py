"""TensorBoard shows each round once across a resume: the resumed run's writer purges the points the
stopped run wrote after its last checkpoint (the rounds it redoes)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from fedray.engine.history import RoundRecord
from fedray.engine.observers import RunStart
from fedray.report.tensorboard import TensorBoardLogger

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")


def _events(path: Path):
    data, offset = path.read_bytes(), 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[offset + 12:offset + 12 + length])
        offset += 12 + length + 4
        yield event


def _shown_points(log_dir: Path) -> list[tuple[str, int]]:
    """The (tag, step) points TensorBoard shows: a session start at step s drops the earlier points at
    steps ≥ s (TensorBoard's rule for a restarted run)."""
    points: list[tuple[str, int]] = []
    for path in sorted(log_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime_ns):
        for event in _events(path):
            if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
                points = [p for p in points if p[1] < event.step]
            for value in event.summary.value:
                points.append((value.tag, event.step))
    return points


def _run(run_dir: Path, first: int, last: int) -> None:
    logger = TensorBoardLogger()
    logger.on_start(RunStart(run_dir, None, first_round=first, last_round=5))
    assert logger.enabled
    for r in range(first, last + 1):
        logger.on_round(RoundRecord(server_round=r, train_loss=1.0 / r))
    logger.close()


def test_a_resumed_run_shows_each_round_once(tmp_path):
    _run(tmp_path, first=1, last=4)  # stopped after round 4; its checkpoint was at round 2
    time.sleep(1.1)  # event files are named by the second they were opened in
    _run(tmp_path, first=3, last=5)
    losses = [step for tag, step in _shown_points(tmp_path / "tensorboard") if tag == "train_loss"]
    assert sorted(losses) == [1, 2, 3, 4, 5]


def test_rounds_redone_within_a_run_show_once(tmp_path):
    # a restarted aggregator redoes the rounds after its checkpoint (here: round 2 onwards)
    logger = TensorBoardLogger()
    logger.on_start(RunStart(tmp_path, None, first_round=1, last_round=3))
    for r in (1, 2, 3, 2, 3):
        logger.on_round(RoundRecord(server_round=r, train_loss=float(r)))
    logger.close()
    losses = [step for tag, step in _shown_points(tmp_path / "tensorboard") if tag == "train_loss"]
    assert sorted(losses) == [1, 2, 3]
