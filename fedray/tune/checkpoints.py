"""A trial's engine checkpoint as a Tune checkpoint, when the sweep's storage is remote.

With local storage a trial's run directory lies in its persistent trial directory, so a restarted trial
finds its engine checkpoint there. With remote storage (``s3://…``) the run directory is the trial's
local working directory, which a resumed sweep (a new Ray session, maybe another node) no longer has. So
each report that follows a new engine checkpoint carries the run directory as a ``tune.Checkpoint``
(Tune uploads it beside the trial and keeps the latest), and a restarted trial puts Tune's latest
checkpoint back as its run directory before it resumes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from fedray.engine.checkpoint import CHECKPOINT_FILE


class RunDirCheckpoints:
    """The run directory as a ``tune.Checkpoint`` each time the engine has written a new checkpoint."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._seen: int | None = None

    def new(self) -> Any | None:
        """A checkpoint of the run directory when ``checkpoint.pt`` changed since the last call, else
        None. The round loop waits while observers report, so the directory does not change meanwhile."""
        from ray import tune

        path = self.run_dir / CHECKPOINT_FILE
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp is None or stamp == self._seen:
            return None
        self._seen = stamp
        return tune.Checkpoint.from_directory(str(self.run_dir))


def restore_run_dir(run_dir: Path, checkpoint: Any | None) -> None:
    """Put a Tune checkpoint of a run directory back at ``run_dir`` (nothing when there is none)."""
    if checkpoint is None:
        return
    if run_dir.exists():
        shutil.rmtree(run_dir)
    with checkpoint.as_directory() as directory:
        shutil.copytree(directory, run_dir)


def trial_report(remote: bool, run_dir: Path) -> Callable[[dict[str, float]], None]:
    """How the trial reports: ``tune.report``, with the run directory as a checkpoint after each new
    engine checkpoint when the storage is remote."""
    from ray import tune

    if not remote:
        return tune.report
    checkpoints = RunDirCheckpoints(run_dir)
    return lambda metrics: tune.report(metrics, checkpoint=checkpoints.new())
