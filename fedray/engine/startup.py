"""The start-up split: where the seconds before round 1 go, written to the run log.

The driver's steps are timed as they happen (``ray.init``, starting the actors and the aggregator,
building the data while the actors load their models, waiting for the actors, the aggregator taking the
initial adapter); the process's own age when the engine starts covers the imports and the scenario
load; each actor reports how long its model took to build (in its own process, overlapping the rest).
Each step is also announced as it begins and ends (a ``startup`` :class:`~fedray.engine.observers.Progress`),
so a terminal shows what the seconds before round 1 are spent on while they pass.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from fedray.engine.observers import Progress

logger = logging.getLogger("fedray.engine.simulation")


def process_age_s() -> float | None:
    """Seconds since this process started (None where the OS does not say)."""
    try:
        import psutil

        return time.time() - psutil.Process().create_time()
    except Exception:  # psutil comes with Ray; without it the split just lacks this entry
        return None


class StartupClock:
    """Times the driver's start-up steps and logs them as one line (see the module docstring)."""

    def __init__(self, on_progress: Callable[[Progress], None] | None = None) -> None:
        self.before_engine_s = process_age_s()  # imports, scenario load, run directory
        self.began = time.perf_counter()
        self.phases: dict[str, float] = {}
        self._reported_round = False
        self._on_progress = on_progress or (lambda step: None)

    @contextmanager
    def phase(self, name: str, label: str | None = None) -> Iterator[None]:
        """Time step ``name`` (its key in the logged split); ``label`` is what a user reads meanwhile."""
        label = label or name
        self._on_progress(Progress("startup", label, 0))
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = time.perf_counter() - start
            self._on_progress(Progress("startup", label, 1))

    def split(self) -> dict[str, float]:
        """Each step's seconds, the process's age before the engine started first."""
        out = {} if self.before_engine_s is None else {"imports + scenario": self.before_engine_s}
        return {**out, **self.phases}

    def report(self, actor_info: Sequence[dict[str, Any]], adapter_nbytes: int) -> None:
        """Log the split up to the first round, and what the actors built."""
        steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.split().items())
        builds = [info.get("build_s") for info in actor_info if info.get("build_s") is not None]
        logger.info("start-up: %s; each client actor built its model in %s s (in its own process, "
                    "during the steps above)", steps, "/".join(f"{b:.2f}" for b in builds) or "?")
        info = actor_info[0]
        shipped = info["adapter_bytes"]  # modules_to_save are whole modules: often the bulk
        logger.info("%d client actors ready (%s trainable params each, adapter %.1f KiB: LoRA %.1f KiB, "
                    "modules_to_save %.1f KiB, sent down and up per client per round)",
                    len(actor_info), info["trainable_params"], adapter_nbytes / 1024,
                    shipped["lora"] / 1024, shipped["modules_to_save"] / 1024)

    def first_round_done(self, server_round: int) -> None:
        """Log once how long the engine took from its start to the end of its first round."""
        if self._reported_round:
            return
        self._reported_round = True
        total = time.perf_counter() - self.began + (self.before_engine_s or 0.0)
        logger.info("start-up: round %d ended %.2f s after the process started", server_round, total)
