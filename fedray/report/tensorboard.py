"""TensorBoard event files written while a run goes, one scalar group per round-record field.

:class:`TensorBoardLogger` is a round observer (:class:`~fedray.engine.observers.RoundObserver`) that
the CLI and Tune trials hand to a run. In ``<run dir>/tensorboard`` (or the ``log_dir`` it was given)
it writes, at step ``server_round``, ``train_loss``, ``eval/<metric>``, ``validation/<metric>``,
``time_s/<phase>``, ``bytes/{sent,down,up}`` and ``aggregate/<metric>``. It writes with
``tensorboardX.SummaryWriter`` (a dependency; Ray Tune's own logger uses it too), not
``torch.utils.tensorboard``: the driver that runs it imports no torch (docs/architecture.md). Without
tensorboardX it writes nothing (``enabled`` is False, and one INFO line says so) and a run goes on
unchanged. It flushes after every round, so a run that is killed (a sweep's scheduler stops trials that
way) keeps its curves. A resumed run opens its writer with ``purge_step`` at its first round: the rounds
the stopped run wrote after its last checkpoint are redone, and TensorBoard drops their first points, so
each round shows once. A round that goes back within a run (a restarted aggregator redoes rounds)
reopens the writer the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fedray.engine.history import RoundRecord
from fedray.engine.observers import RoundObserver, RunStart
from fedray.engine.summary import RunSummary
from fedray.lazy import hidden

logger = logging.getLogger(__name__)


def _summary_writer_class() -> Any:
    """tensorboardX's writer, imported without letting it import torch (it probes for torch only to
    accept torch tensors; this logger hands it floats); None where tensorboardX is not installed."""
    try:
        with hidden("torch"):
            from tensorboardX import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


class TensorBoardLogger(RoundObserver):
    """Writes each round's scalars under ``log_dir`` (see the module docstring).

    Without ``log_dir`` it opens its writer when a run starts, in the run directory's ``tensorboard``.
    """

    def __init__(self, log_dir: str | Path | None = None) -> None:
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._writer: Any = None
        if self.log_dir is not None:
            self._open(self.log_dir)

    def _open(self, log_dir: Path, purge_step: int | None = None) -> None:
        self.log_dir = log_dir
        self._last_step: int | None = None
        writer_class = _summary_writer_class()
        if writer_class is None:
            logger.info("neither tensorboard nor tensorboardX is installed: no TensorBoard files for %s",
                        self.log_dir)
        self._opened = getattr(self, "_opened", 0) + 1  # its own file each time (names go by the second)
        options = {} if purge_step is None else {"purge_step": purge_step,
                                                 "filename_suffix": f".{self._opened}"}
        self._writer = writer_class(str(self.log_dir), **options) if writer_class is not None else None

    def on_start(self, start: RunStart) -> None:
        if self.log_dir is None:  # a run starts at round 0 or 1; a resumed one later
            self._open(start.run_dir / "tensorboard", purge_step=start.first_round if start.first_round > 1
                       else None)

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def on_round(self, record: RoundRecord) -> None:
        """Write ``record``'s scalars at step ``record.server_round``."""
        if self._writer is None:
            return
        if self._last_step is not None and record.server_round <= self._last_step:  # a redone round
            self._writer.close()
            self._open(self.log_dir, purge_step=record.server_round)
        self._last_step = record.server_round
        for tag, value in round_scalars(record).items():
            self._writer.add_scalar(tag, value, record.server_round)
        self._writer.flush()

    def on_finish(self, summary: RunSummary, completed: bool) -> None:
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def round_scalars(record: RoundRecord) -> dict[str, float]:
    """Tag → value of every number in a round record."""
    out: dict[str, float] = {}
    if record.train_loss is not None:
        out["train_loss"] = record.train_loss
    for group, values in (("eval", record.eval), ("validation", record.validation),
                          ("time_s", record.time_s), ("aggregate", record.aggregate)):
        out.update({f"{group}/{k}": float(v) for k, v in values.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if record.server_round > 0:
        out.update({"bytes/sent": record.bytes_sent, "bytes/down": record.bytes_down,
                    "bytes/up": record.bytes_up})
    return out
