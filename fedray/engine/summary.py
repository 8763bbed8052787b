"""A run's headline results: its round records and the round the validation split picked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedray.config.schema import Scenario
from fedray.engine.history import RoundRecord
from fedray.engine.modes import build_run_mode


@dataclass
class RunSummary:
    """What :meth:`fedray.engine.simulation.Simulation.execute` returns (and ``summary.json`` holds)."""

    run_dir: Path
    rounds: list[RoundRecord] = field(default_factory=list)
    best_round: int | None = None  # picked on the validation split, never on the test set

    @property
    def final_eval(self) -> dict[str, float]:
        evaluated = [r.eval for r in self.rounds if r.eval]
        return evaluated[-1] if evaluated else {}

    @property
    def best_eval(self) -> dict[str, float]:
        """Test metrics of the best-validation round (the final ones when there is no validation)."""
        chosen = [r.eval for r in self.rounds if r.server_round == self.best_round and r.eval]
        return chosen[0] if chosen else self.final_eval

    def to_json(self, scenario: Scenario) -> dict[str, Any]:
        """``summary.json``: which run this was and its final and best-validation test metrics (``strategy``
        is None in the modes no server rule shapes: local and zero-shot)."""
        shaped = build_run_mode(scenario).uses_strategy  # local and zero-shot runs aggregate nothing
        return {"name": scenario.name, "mode": scenario.mode, "modality": scenario.modality.name,
                "strategy": scenario.strategy.name if shaped else None, "seed": scenario.seed,
                "rounds_completed": max((r.server_round for r in self.rounds), default=0),
                "final_eval": self.final_eval, "best_round": self.best_round,
                "best_eval": self.best_eval}
