"""How many fits one Ray call to a client actor carries (``resources.fits_per_call``).

Every call costs the same whatever it carries: the driver submits it and waits for it, Ray schedules it
and stores its two return objects, the driver hands them on to the aggregator. When a fit is a few tens
of milliseconds (one local step of a small model) those costs are a large share of it, and they take
CPU from the fits on a machine the actors fill. A call that carries k fits pays them once for k.

A call must not carry so many that the round's last wave is lopsided (one actor still working through a
long call while the others idle), so each actor group keeps getting several calls a round. Chunking
changes where and in which grouping fits run, never what they compute: fits are pure functions of
(round, client), and the aggregator takes results in cohort order.

``auto`` (the default, ``fits_per_call: null``) picks k from the previous round's measured fit times (its
first round, and a resumed run's first, use k = 1): enough fits that a call's work is about
``WORK_PER_OVERHEAD`` times a call's cost, at most what leaves each group ``MIN_CALLS_PER_GROUP`` calls.
"""

from __future__ import annotations

import logging
import math
import statistics
from typing import Sequence

from fedray.engine.tasks import FitReport

logger = logging.getLogger(__name__)

#: What one call costs beside its fits (submission, scheduling, storing its outputs, the driver's wait
#: and refill, the forwarding to the aggregator): ≈ 2 ms of wall time with idle actors and ≈ 10 ms a fit
#: measured on the 2-core bench machine while the actors train (docs/benchmarks.md).
CALL_OVERHEAD_S = 0.010

#: A call's fits should take about this many times a call's cost (overhead ≲ 10 % of the work).
WORK_PER_OVERHEAD = 10.0

#: Calls per actor group and round at least, so the last wave stays balanced.
MIN_CALLS_PER_GROUP = 4


def auto_fits_per_call(fit_s: Sequence[float], fits: int, groups: int) -> int:
    """k for a round of ``fits`` fits on ``groups`` groups, from measured fit times (seconds; empty: 1)."""
    if not fit_s or fits < 1 or groups < 1:
        return 1
    typical = max(statistics.median(fit_s), 1e-6)
    wanted = math.ceil(CALL_OVERHEAD_S * WORK_PER_OVERHEAD / typical)
    cap = fits // (groups * MIN_CALLS_PER_GROUP)
    return max(1, min(wanted, cap))


class CallSizer:
    """Chooses each round's fits per call: ``setting`` (an int), or auto (None) from the last round's fits.

    Group clients (``actors_per_client`` > 1) always get 1: their ranks train each fit together.
    """

    def __init__(self, setting: int | None, actors_per_client: int = 1) -> None:
        self.setting = setting
        self.grouped = actors_per_client > 1
        self.fit_s: list[float] = []  # the last round's measured fit times
        self.last: int | None = None

    def next(self, fits: int, groups: int) -> int:
        """Fits per call for a round of ``fits`` fits on ``groups`` groups."""
        if self.grouped:
            chosen = 1
        elif self.setting is not None:
            chosen = self.setting
        else:
            chosen = auto_fits_per_call(self.fit_s, fits, groups)
        if chosen != self.last:
            logger.info("%d fit(s) per call to a client actor (%s)", chosen,
                        "resources.fits_per_call" if self.setting is not None else "auto")
            self.last = chosen
        return chosen

    def observe(self, reports: Sequence[FitReport]) -> None:
        """Remember a round's measured fit times (a round with no result keeps the previous ones)."""
        times = [r.fit_s for r in reports if r.fit_s > 0]
        if times:
            self.fit_s = times
