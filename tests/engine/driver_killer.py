"""A driver that SIGKILLs itself at a chosen point (run as a subprocess by test_kill_driver.py).

``python -m tests.engine.driver_killer SCENARIO_JSON RUN_DIR ROUND PHASE [--resume]`` runs (or resumes)
the scenario in RUN_DIR on the Ray cluster at ``RAY_ADDRESS`` and kills its own process, with no chance
to clean up, at PHASE of round ROUND.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

PHASES = ("mid-fit", "after-aggregation", "mid-history-line", "before-checkpoint", "mid-checkpoint",
          "final-save")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(phase: str, at_round: int) -> None:
    """Patch the engine so that the process dies at ``phase`` of round ``at_round``."""
    from fedray.engine import simulation
    from fedray.engine.history import HistoryWriter

    sim = simulation.Simulation

    def wrap(name, before=None, after=None):
        original = getattr(sim, name)

        def patched(self, first, *args, **kwargs):
            here = getattr(first, "server_round", first) == at_round  # a round number or a record
            if here and before:
                before()
            result = original(self, first, *args, **kwargs)
            if here and after:
                after()
            return result

        setattr(sim, name, patched)

    if phase == "mid-fit":
        wrap("_fit", before=lambda: threading.Timer(0.2, die).start())
    elif phase == "after-aggregation":
        wrap("_aggregate", after=die)
    elif phase == "before-checkpoint":
        wrap("_checkpoint_if_due", before=die)
    elif phase == "mid-checkpoint":
        wrap("_checkpoint_if_due", before=lambda: threading.Timer(0.01, die).start())
    elif phase == "mid-history-line":
        real = HistoryWriter.append

        def append(self, record):
            if record.server_round != at_round:
                return real(self, record)
            line = json.dumps(record.to_json(), sort_keys=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line[: len(line) // 2])
            die()

        HistoryWriter.append = append
    elif phase == "final-save":
        original = sim._finish

        def finish(self, started_ray, completed):
            ray_get = simulation.ray.get

            def get_then_die(*args, **kwargs):  # the final adapter is written, the summary is not
                value = ray_get(*args, **kwargs)
                die()
                return value

            simulation.ray.get = get_then_die
            original(self, started_ray, completed)

        sim._finish = finish


def main(argv: list[str]) -> None:
    from fedray.config import scenario_from_dict
    from fedray.engine.simulation import Simulation

    raw, run_dir, at_round, phase = json.loads(argv[0]), Path(argv[1]), int(argv[2]), argv[3]
    arm(phase, at_round)
    Simulation(scenario_from_dict(raw), run_dir, resume="--resume" in argv).execute()


if __name__ == "__main__":
    main(sys.argv[1:])
