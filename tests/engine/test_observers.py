"""Round observers: one interface for whatever watches the round loop; and what the engine imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fedray.engine.history import HistoryWriter, RoundRecord, read_history
from fedray.engine.observers import Observers, RoundCallback, RoundObserver, RunStart
from fedray.engine.summary import RunSummary

ENGINE = Path(__file__).parents[2] / "fedray" / "engine"


class Recorder(RoundObserver):
    def __init__(self, name: str, log: list, fail_on_finish: bool = False) -> None:
        self.name, self.log, self.fail_on_finish = name, log, fail_on_finish

    def on_start(self, start: RunStart) -> None:
        self.log.append((self.name, "start", start.first_round, start.last_round))

    def on_round(self, record: RoundRecord) -> None:
        self.log.append((self.name, "round", record.server_round))

    def on_failed_round(self, record: RoundRecord) -> None:
        self.log.append((self.name, "failed", record.server_round))

    def on_finish(self, summary: RunSummary, completed: bool) -> None:
        self.log.append((self.name, "finish", completed))
        if self.fail_on_finish:
            raise RuntimeError(f"{self.name} could not finish")


def test_observers_are_called_in_the_order_given(tmp_path):
    log: list = []
    both = Observers([Recorder("a", log), Recorder("b", log)])
    both.on_start(RunStart(tmp_path, None, 0, 2))
    both.on_round(RoundRecord(server_round=1))
    both.on_failed_round(RoundRecord(server_round=2))
    both.on_finish(RunSummary(tmp_path), completed=False)
    assert log == [("a", "start", 0, 2), ("b", "start", 0, 2), ("a", "round", 1), ("b", "round", 1),
                   ("a", "failed", 2), ("b", "failed", 2), ("a", "finish", False), ("b", "finish", False)]


def test_every_observer_finishes_even_when_one_raises(tmp_path):
    log: list = []
    both = Observers([Recorder("a", log, fail_on_finish=True), Recorder("b", log)])
    with pytest.raises(RuntimeError, match="a could not finish"):
        both.on_finish(RunSummary(tmp_path), completed=True)
    assert log == [("a", "finish", True), ("b", "finish", True)]


def test_the_base_observer_ignores_everything_and_a_callback_sees_each_round(tmp_path):
    seen: list[int] = []
    plain, callback = RoundObserver(), RoundCallback(lambda record: seen.append(record.server_round))
    for observer in (plain, callback):
        observer.on_start(RunStart(tmp_path, None, 1, 1))
        observer.on_round(RoundRecord(server_round=1))
        observer.on_failed_round(RoundRecord(server_round=2))
        observer.on_finish(RunSummary(tmp_path), completed=True)
    assert seen == [1]


def test_history_keeps_completed_and_failed_rounds(tmp_path):
    history = HistoryWriter(tmp_path / "history.jsonl")
    history.on_round(RoundRecord(server_round=1, train_loss=2.0))
    history.on_failed_round(RoundRecord(server_round=2, failures=[{"client_id": 0, "reason": "x"}]))
    assert [(r["round"], r["train_loss"]) for r in read_history(tmp_path / "history.jsonl")] == \
        [(1, 2.0), (2, None)]


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, and every name it imports from one (``module.name``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(ENGINE.glob("*.py")), ids=lambda p: p.name)
def test_the_engine_imports_no_higher_layer(path):
    higher = ("report", "cli", "tune", "bench")
    assert [name for name in _imports(path) if name.split(".")[:2] in (["fedray", h] for h in higher)] == []


def test_the_simulation_imports_no_observer():
    imported = _imports(ENGINE / "simulation.py")
    assert "fedray.engine.observers.RoundObserver" in imported  # the interface only
    assert not {name for name in imported if name.endswith(("HistoryWriter", "TensorBoardLogger"))}
