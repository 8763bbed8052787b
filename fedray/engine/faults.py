"""Faults that stop a run from outside fedray's control, and what the user is told.

A file that cannot be written (full disk, missing permission) and a dead aggregator actor end the round
loop with one message: what happened, what is saved (the history's rounds, the checkpoint's round) and
the command that continues the run. A dead aggregator is first restarted from the last checkpoint, up to
:data:`AGGREGATOR_RESTARTS` times (by :class:`~fedray.engine.simulation.Simulation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import ray

from fedray.engine.files import RunDirWriteError, describe_os_error

#: How many times a run restarts a dead aggregator actor from its last checkpoint before it stops.
AGGREGATOR_RESTARTS = 1


def write_error_in(exc: BaseException) -> OSError | RunDirWriteError | None:
    """The file-writing error behind ``exc``, if any (through remote errors and re-raised ones)."""
    seen: BaseException | None = exc
    while seen is not None:
        inner = getattr(seen, "cause", None)  # a Ray error: look at what the actor raised
        if isinstance(inner, BaseException) and inner is not seen:
            seen = inner
            continue
        if isinstance(seen, (RunDirWriteError, OSError)):
            return seen
        seen = seen.__cause__
    return None


def actor_dead(handle: Any) -> bool:
    """True when the actor behind ``handle`` has died (its death surfaces as whatever call first needed
    it, so the run asks it directly)."""
    if handle is None:
        return False
    try:
        ray.get(handle.global_nbytes.remote(), timeout=30)
    except ray.exceptions.RayActorError:
        return True
    except Exception:  # alive but slow, or another error: not a death
        return False
    return False


def stop_message(exc: BaseException, run_path: Path, rounds: Sequence[int], last_checkpoint: int | None,
                 aggregator_died: bool) -> str | None:
    """The message that ends a run stopped by ``exc``, or None when ``exc`` is not such a fault."""
    cause = write_error_in(exc)
    if isinstance(cause, RunDirWriteError):
        what, fix = str(cause), "free some space or fix the permissions, then continue"
    elif cause is not None:
        where = getattr(cause, "filename", None) or "a file"
        what = f"could not write {where}: {describe_os_error(cause)}"
        fix = "free some space or fix the permissions, then continue"
    elif aggregator_died:
        what, fix = "the aggregator actor died", "continue"
    else:
        return None
    saved = (f"the history holds rounds {rounds[0]}–{rounds[-1]}" if rounds else "no round was completed") + \
        ("; no checkpoint" if last_checkpoint is None else f"; the checkpoint is at round {last_checkpoint}")
    if last_checkpoint is None:
        return f"the run stopped: {what}. Saved: {saved}. To go on, start the run again"
    return f"the run stopped: {what}. Saved: {saved}. To go on, {fix} with: fedray run --resume {run_path}"
