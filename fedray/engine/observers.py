"""Round observers: what watches the round loop without the loop knowing who is watching.

The run directory's history, TensorBoard, the terminal's progress lines and Ray Tune's reports are all
:class:`RoundObserver` s handed to :class:`~fedray.engine.simulation.Simulation`, which calls every hook
in the order the observers were given. The engine imports none of them: the layer that starts a run
(the CLI, a Tune trial, a script) picks its observers.

Besides the rounds, the engine reports the long work inside them as :class:`Progress` steps (start-up
phases, fits done in a round, evaluation samples scored), so a live display never sits silent while a
model loads or a round of a real model runs for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:  # only for annotations: history and summary import nothing from here either
    from fedray.config.schema import Scenario
    from fedray.engine.history import RoundRecord
    from fedray.engine.summary import RunSummary


@dataclass(frozen=True)
class RunStart:
    """What an observer learns as the rounds begin."""

    run_dir: Path
    scenario: Scenario
    first_round: int  # 0 when the initial model is evaluated first; after a resume, the next round
    last_round: int  # the run mode's last round (0 for a run that trains nothing)


@dataclass(frozen=True)
class Progress:
    """How far one piece of long work has got: ``done`` of ``total`` (``total`` 0: a phase that has
    no count, which is begun with ``done`` 0 and ended with ``done`` 1).

    ``stage`` says what kind of work it is (one of :data:`PROGRESS_STAGES`); ``label`` says, in words
    a user reads, which one ("loading the model on 2 client actors", "round 3", "test set").
    """

    stage: str
    label: str
    done: int
    total: int = 0

    @property
    def finished(self) -> bool:
        return self.done >= max(self.total, 1)


#: The stages the engine reports: start-up phases, one round's fits, one evaluation pass.
PROGRESS_STAGES = ("startup", "fit", "eval")


class RoundObserver:
    """Hooks called by the round loop; each does nothing unless a subclass overrides it."""

    def on_progress(self, step: Progress) -> None:
        """As long work advances: start-up phases (before :meth:`on_start`), each fit that comes
        back, each evaluation shard scored. For live displays; nothing may depend on it."""

    def on_start(self, start: RunStart) -> None:
        """Once, after data and actors are ready and before the first round (round 0 included)."""

    def on_round(self, record: RoundRecord) -> None:
        """After each completed round (fit, aggregate and, when due, evaluation)."""

    def on_failed_round(self, record: RoundRecord) -> None:
        """A round that ends the run (too few fits, or aggregation failed), as far as it got."""

    def on_finish(self, summary: RunSummary, completed: bool) -> None:
        """Once, last, after the summary and adapters are written; also when the run failed (even
        before :meth:`on_start`), with ``completed`` False."""


class RoundCallback(RoundObserver):
    """An observer made of one function of each completed round's record."""

    def __init__(self, on_round: Callable[[RoundRecord], None]) -> None:
        self._on_round = on_round

    def on_round(self, record: RoundRecord) -> None:
        self._on_round(record)


class Observers(RoundObserver):
    """Several observers as one: each hook calls theirs in order."""

    def __init__(self, observers: Iterable[RoundObserver]) -> None:
        self.members = list(observers)

    def on_progress(self, step: Progress) -> None:
        for observer in self.members:
            observer.on_progress(step)

    def on_start(self, start: RunStart) -> None:
        for observer in self.members:
            observer.on_start(start)

    def on_round(self, record: RoundRecord) -> None:
        for observer in self.members:
            observer.on_round(record)

    def on_failed_round(self, record: RoundRecord) -> None:
        for observer in self.members:
            observer.on_failed_round(record)

    def on_finish(self, summary: RunSummary, completed: bool) -> None:
        """Every observer finishes (each may hold a file open) even when one raises; then the first
        error is raised."""
        errors: list[BaseException] = []
        for observer in self.members:
            try:
                observer.on_finish(summary, completed)
            except Exception as exc:  # the others still close their files
                errors.append(exc)
        if errors:
            raise errors[0]
