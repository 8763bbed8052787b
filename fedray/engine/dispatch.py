"""One round's fits on the actor pool: every group always has its next call queued.

A group that got its next fit only once the driver had seen the previous one finish would idle for a
driver round trip per fit. So each group holds up to ``depth`` calls at once (Ray runs an actor's calls
in the order they were submitted, so the second waits in the actor's own queue and starts the moment the
first ends), and the driver refills a group whenever one of its calls comes back. Every finished call is
handed to ``on_result`` at once (the engine forwards it to the aggregator, which folds it in while the
other fits run).

When fits are short a call may carry several (``per_call``, :mod:`fedray.engine.chunking`): consecutive
cohort members, run one after another by the actor and returned as two objects (their reports, their
adapters), so a call's fixed costs are paid once for all of them; calls shrink as the queue drains, so
the round's last ones are short. A fit that raises inside such a call
fails alone (the actor returns its failure in the call's reports).

Fits are pure functions of (round, client), so where a fit runs, and with which others in a call, never
changes its result. A group that dies takes its queued calls with it: the oldest one (the call it was
running) is charged, the ones queued behind it go back to the front of the queue untouched. A charged
call of one fit counts as that fit's failed attempt; a charged call of several cannot tell which fit
killed its actor, so its fits go back to the queue uncharged, each to run in a call of its own (a fit
that kills its actor again is then the one charged). Every wait has the round's deadline; what is not
done by then becomes a failure.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import ray

from fedray.engine.group import ActorGroup, GroupFit
from fedray.engine.tasks import FitFailure, FitReport, FitTask
from fedray.errors import FedRayError

if TYPE_CHECKING:
    from fedray.engine.pool import ActorPool

logger = logging.getLogger(__name__)

#: Called with (report ref, params ref, report) of each call as it finishes; a call of several fits gives
#: the refs of its two lists and the list of its fits' reports (FitReport or FitFailure, in task order).
OnResult = Callable[[Any, Any, Any], None]

#: Adapter bytes one forwarding call carries (at least one adapter): about what the aggregator folds in
#: the CPU time a Ray call costs (≈3 ms a call and ≈3 ms a MiB, measured on 2 busy cores).
BATCH_BYTES = 2**20


class ResultBatches:
    """Hands finished fits' result refs on (``send``) in batches of about ``BATCH_BYTES``, the rest at
    :meth:`flush` (after the round's last fit).

    A forwarding call per fit costs a Ray call's CPU (driver, aggregator, raylet), which on a machine
    whose cores the actors fill is taken from the fits; folding a small adapter costs less than the
    call. So small adapters travel in batches (the last batch is folded after the last fit, which
    takes about one call's time), and big ones (whose fold is what costs) one by one, each folded
    while the other fits run.
    """

    def __init__(self, send: Callable[[list[tuple[Any, Any]]], None], adapter_nbytes: int) -> None:
        self.size = max(1, BATCH_BYTES // max(1, adapter_nbytes))
        self.send = send
        self.pending: list[tuple[Any, Any]] = []
        self.fits = 0  # fits in the pending pairs

    def __call__(self, report_ref: Any, params_ref: Any, report: Any) -> None:
        self.pending.append((report_ref, params_ref))
        self.fits += len(report) if isinstance(report, list) else 1  # a call of several fits: its list
        if self.fits >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.send(self.pending)
            self.pending, self.fits = [], 0


@dataclass(frozen=True)
class InCall:
    """A fit's adapter when its call carried several: position ``index`` of the call's adapter list."""

    ref: Any  # the call's params ObjectRef
    index: int


def fetch_params(params: Any, timeout_s: float | None = None) -> Any:
    """The adapter an :attr:`FitOutcome.params` entry stands for (an ObjectRef or an :class:`InCall`)."""
    if isinstance(params, InCall):
        return ray.get(params.ref, timeout=timeout_s)[params.index]
    return ray.get(params, timeout=timeout_s)


@dataclass
class FitOutcome:
    """What came back from one round's fits."""

    reports: list[FitReport] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)  # ObjectRefs or InCalls, aligned with reports
    failures: list[FitFailure] = field(default_factory=list)
    retries: list[FitFailure] = field(default_factory=list)  # fits redone after their actor died

    def in_cohort_order(self, tasks: Sequence[FitTask]) -> FitOutcome:
        """The same outcome with results and failures in the order the tasks were dispatched.

        Fits finish in whatever order the actors happen to run; summing float32 updates in that order
        would make the aggregate differ in its last bits from run to run (and break exact resume).
        """
        rank = {task.client_id: i for i, task in enumerate(tasks)}
        pairs = sorted(zip(self.reports, self.params), key=lambda pair: rank[pair[0].client_id])
        return FitOutcome(reports=[r for r, _ in pairs], params=[p for _, p in pairs],
                          failures=sorted(self.failures, key=lambda f: rank[f.client_id]),
                          retries=list(self.retries))


class FitRound:
    """Runs one round's tasks on ``pool``'s groups: at most ``depth`` calls queued per group, each of up to
    ``per_call`` fits.

    ``start(task)`` gives the fit's (adapter ref, objective ref or None).
    """

    def __init__(self, pool: ActorPool, start: Callable[[FitTask], tuple[Any, Any]], depth: int,
                 on_result: OnResult | None = None, per_call: int = 1) -> None:
        self.pool, self.start, self.depth, self.on_result = pool, start, max(1, depth), on_result
        self.per_call = max(1, per_call)
        self.queue: deque[tuple[FitTask, int]] = deque()  # (task, attempts already charged)
        self.alone: set[int] = set()  # clients whose fit runs in a call of its own (their call's actor died)
        self.lanes: dict[ActorGroup, deque[GroupFit]] = {group: deque() for group in pool.groups}
        self.waiting: dict[Any, GroupFit] = {}  # each member's report ref → its group's call
        self.outcome = FitOutcome()

    def run(self, tasks: Sequence[FitTask], timeout_s: float) -> FitOutcome:
        deadline = time.monotonic() + timeout_s
        self.queue.extend((task, 0) for task in tasks)
        while self.queue or self.waiting:
            self._fill()
            done, _ = ray.wait(list(self.waiting), num_returns=1,
                               timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                self._expire(timeout_s)
                break
            fit = self.waiting.pop(done[0])
            fit.pending.discard(done[0])
            value, error = _result_of(done[0])
            if done[0] == fit.report_ref:
                fit.report = value
            if error is None and fit.pending:
                continue  # the group's other ranks are still training
            for ref in fit.pending:  # a member failed: the others may never return
                self.waiting.pop(ref, None)
            self._settle(fit, error)
        return self.outcome.in_cohort_order(tasks)

    def _fill(self) -> None:
        """Queue calls on the groups with the fewest, up to ``depth`` each (pool order breaks ties)."""
        while self.queue:
            group = min(self.pool.groups, key=lambda g: len(self.lanes[g]))
            if len(self.lanes[group]) >= self.depth:
                return
            batch = self._next_call(group)
            if len(batch) == 1:
                task, attempt = batch[0]
                start, objective = self.start(task)
                fit = group.fit(task, start, attempt, objective)
            else:
                tasks = [task for task, _ in batch]
                starts, objectives = zip(*(self.start(task) for task in tasks))
                fit = group.fit_chunk(tasks, starts, objectives)
            self.lanes[group].append(fit)
            self.waiting.update(dict.fromkeys(fit.pending, fit))

    def _next_call(self, group: ActorGroup) -> list[tuple[FitTask, int]]:
        """The next call's fits: fresh ones from the queue's front, or the front one alone (a retry, a fit
        whose call's actor died, any fit of a group of several actors).

        A call takes up to ``per_call`` fits, and no more than an even share of what is left among the
        calls the groups can hold (``depth`` each): calls shrink as the queue drains, so the round's last
        calls are short and no group works through a long one while the others idle.
        """
        share = math.ceil(len(self.queue) / (self.depth * len(self.pool.groups)))
        batch = [self.queue.popleft()]
        if group.size > 1 or not self._fresh(batch[0]):
            return batch
        while len(batch) < min(self.per_call, share) and self.queue and self._fresh(self.queue[0]):
            batch.append(self.queue.popleft())
        return batch

    def _fresh(self, item: tuple[FitTask, int]) -> bool:
        task, attempt = item
        return attempt == 0 and task.client_id not in self.alone

    def _settle(self, fit: GroupFit, error: BaseException | None) -> None:
        """Record a finished call: its results, or its failure (and what that does to its group)."""
        lane = self.lanes[fit.group]
        if isinstance(error, ray.exceptions.RayActorError):
            # A dead actor fails every call queued on it, in no set order: the one it was running
            # is its lane's head (an actor runs its calls in order); the others go back untouched.
            fit = lane[0]
            for ref in fit.pending:
                self.waiting.pop(ref, None)
        lane.remove(fit)
        if error is None:
            self._record(fit)
        elif isinstance(error, ray.exceptions.RayActorError):
            self._actor_died(fit, error)
        else:  # a client's exception must not end the round for the others
            for task in fit.tasks:
                logger.error("client %d failed in round %d", task.client_id, task.server_round,
                             exc_info=error)
                self.outcome.failures.append(FitFailure(task.client_id, f"{type(error).__name__}: {error}"))
            if fit.group.size > 1:  # its other ranks may be stuck in a collective
                self._replace(fit.group)

    def _record(self, fit: GroupFit) -> None:
        """A call's results: each fit's report and adapter, or (in a call of several) its failure."""
        report = fit.report if fit.report is not None else ray.get(fit.report_ref)
        if not fit.chunk:
            self.outcome.reports.append(report)
            self.outcome.params.append(fit.params_ref)
        else:
            for index, entry in enumerate(report):
                if isinstance(entry, FitFailure):
                    logger.error("client %d failed in round %d: %s", entry.client_id, fit.task.server_round,
                                 entry.reason)
                    self.outcome.failures.append(entry)
                else:
                    self.outcome.reports.append(entry)
                    self.outcome.params.append(InCall(fit.params_ref, index))
            if all(isinstance(entry, FitFailure) for entry in report):
                return  # nothing to hand on
        if self.on_result is not None:
            self.on_result(fit.report_ref, fit.params_ref, report)

    def _actor_died(self, fit: GroupFit, error: BaseException) -> None:
        """The call a group was running when it died: a fit's failed attempt (retried while attempts are
        left), or, for a call of several fits, each of them back to the queue uncharged, alone."""
        task = fit.task
        if fit.chunk:
            clients = [t.client_id for t in fit.chunk]
            logger.error("the actor running clients %s in one call died in round %d; each is redone in a "
                         "call of its own (%s)", clients, task.server_round, root_cause(error))
            self.alone.update(clients)
            self._replace(fit.group)
            self.queue.extendleft((t, 0) for t in reversed(fit.chunk))
            return
        retry = fit.attempt < self.pool.retries
        logger.error("client %d's actor died in round %d%s", task.client_id, task.server_round,
                     " (retrying on another actor)" if retry else "", exc_info=error)
        failure = FitFailure(task.client_id, f"actor died: {root_cause(error)}")
        if retry:
            self.queue.append((task, fit.attempt + 1))
            self.outcome.retries.append(failure)
        else:
            self.outcome.failures.append(failure)
        self._replace(fit.group)

    def _replace(self, dead: ActorGroup) -> None:
        """Swap ``dead`` for a fresh group; the calls queued behind the failed one go back, untouched."""
        behind = self.lanes.pop(dead)
        for fit in reversed(behind):
            for ref in fit.pending:
                self.waiting.pop(ref, None)
            self.queue.extendleft((task, fit.attempt) for task in reversed(fit.tasks))
        fresh = self.pool.replace(dead)
        self.lanes[fresh] = deque()

    def _expire(self, timeout_s: float) -> None:
        reason = f"timed out: not done within federation.round_timeout_s={timeout_s:g}"
        for ref in self.waiting:
            ray.cancel(ref)
        for group, lane in list(self.lanes.items()):
            for position, fit in enumerate(lane):
                # A running call of several fits returns nothing until its last: all of them time out.
                self.outcome.failures += [FitFailure(task.client_id, reason + ("" if position == 0 else
                                                                               " (never started)"))
                                          for task in fit.tasks]
            if lane and group.size > 1:  # cancelled ranks leave the others in a collective
                self.pool.replace(group)
        self.outcome.failures += [FitFailure(task.client_id, reason + " (never started)")
                                  for task, _ in self.queue]
        self.waiting.clear()
        self.queue.clear()
        self.lanes.clear()


def _result_of(ref: Any) -> tuple[Any, BaseException | None]:
    """What a finished call returned, or the exception it raised."""
    try:
        return ray.get(ref, timeout=0), None
    except Exception as exc:  # what it raised is the answer, not a failure of this function
        return None, exc


def root_cause(exc: BaseException) -> str:
    """The innermost exception's message: a fedray error raised in an actor keeps its own words."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    while cause is not None:
        if isinstance(cause, FedRayError):
            return str(cause)
        cause = getattr(cause, "cause", None) or cause.__cause__
    return str(exc).strip().splitlines()[-1]
