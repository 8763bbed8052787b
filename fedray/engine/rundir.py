"""The run directory: resolved config, manifest, history, log, summary and the adapters.

A run never writes into a directory that holds another run: :meth:`RunDir.create` refuses one (resume it,
or pass ``overwrite`` to move it aside to a dated sibling first). Files it replaces are written to a
temporary name and renamed (:func:`~fedray.engine.files.write_atomically`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedray.config.load import dump_scenario
from fedray.config.schema import Scenario
from fedray.engine.files import RunDirWriteError, describe_os_error, write_atomically
from fedray.engine.history import HistoryWriter
from fedray.errors import FedRayError

if TYPE_CHECKING:  # the models package loads transformers, which the driver must not import
    from fedray.models.lora import AdapterState


@dataclass
class RunDir:
    path: Path
    _log_handler: logging.Handler | None = None

    @classmethod
    def create(cls, scenario: Scenario, path: str | Path | None = None, overwrite: bool = False) -> RunDir:
        """Make the directory (``<output.root>/<name>-<timestamp>`` by default) and write the config.

        A ``path`` that already holds a run is refused, or with ``overwrite`` moved aside first."""
        try:
            path = _free_path(scenario, path, overwrite)
        except OSError as exc:  # e.g. a name longer than the file system allows
            raise FedRayError(f"cannot create the run directory {path or scenario.output.root}: "
                              f"{describe_os_error(exc)}; choose another --run-dir (or output.root)"
                              ) from None
        run = cls(Path(path))
        try:
            run.path.mkdir(parents=True, exist_ok=True)
            dump_scenario(scenario, run.config_path)
        except OSError as exc:
            raise FedRayError(f"cannot create the run directory {run.path}: {describe_os_error(exc)}; "
                              "choose another --run-dir (or output.root)") from None
        run.attach_log()
        return run

    @classmethod
    def reopen(cls, path: str | Path) -> RunDir:
        """An existing run directory, to resume: its config is kept as written. Nothing is written
        (the log is attached by :meth:`attach_log` once the resume is known to go ahead)."""
        run = cls(Path(path))
        if not run.config_path.is_file():
            raise FedRayError(f"{path} is not a fedray run directory (no config.yaml)")
        return run

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def client_state_dir(self) -> Path:
        return self.path / "client_state"

    def history_writer(self, keep_through: int | None = None) -> HistoryWriter:
        """The observer that appends each round to ``history.jsonl``: every run keeps one, since a
        resumed run reads its rounds back from it (``keep_through``: the resumed checkpoint's round)."""
        return HistoryWriter(self.history_path, keep_through)

    def save_adapter(self, state: AdapterState, name: str = "global_adapter",
                     config: dict | None = None) -> Path:
        """Write an adapter as the PEFT adapter directory ``<name>/`` (:mod:`fedray.engine.adapter_files`)."""
        from fedray.engine.adapter_files import write_adapter_dir

        return write_adapter_dir(self.path / name, state, config)

    def save_summary(self, summary: dict) -> Path:
        """Write ``summary.json`` (the run's headline results) atomically."""
        text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
        return write_atomically(self.path / "summary.json",
                                lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def attach_log(self) -> None:
        """Send the fedray loggers' INFO lines to ``run.log`` (appended to, on a resume)."""
        try:
            handler = logging.FileHandler(self.path / "run.log", encoding="utf-8")
        except OSError as exc:
            raise RunDirWriteError(self.path / "run.log", describe_os_error(exc)) from None
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger("fedray")
        root.addHandler(handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
        self._log_handler = handler

    def close_log(self) -> None:
        """Detach this run's log file (several runs may share one process, e.g. in tests)."""
        if self._log_handler is not None:
            logging.getLogger("fedray").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


#: Files whose presence means a directory holds a run.
RUN_FILES = ("config.yaml", "history.jsonl", "checkpoint.pt", "summary.json")


def _free_path(scenario: Scenario, path: str | Path | None, overwrite: bool) -> Path:
    """``path`` made ready for a new run (see :func:`_make_room`), or ``<output.root>/<name>-<time>``."""
    if path is not None:
        _make_room(Path(path), overwrite)
        return Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    chosen = Path(scenario.output.root) / f"{scenario.name}-{stamp}"
    suffix = 1
    while chosen.exists():
        suffix += 1
        chosen = Path(scenario.output.root) / f"{scenario.name}-{stamp}-{suffix}"
    return chosen


def _make_room(path: Path, overwrite: bool) -> None:
    """Refuse a ``path`` that is a file or holds a run; with ``overwrite`` move such a run aside."""
    if path.exists() and not path.is_dir():
        raise FedRayError(f"--run-dir {path} is a file, not a directory; choose another --run-dir")
    if not path.is_dir() or not any((path / name).exists() for name in RUN_FILES):
        return
    if not overwrite:
        raise FedRayError(f"{path} already holds a run; continue it with `fedray run --resume {path}`, "
                          "start afresh with --overwrite (the old run is moved aside), or choose another "
                          "--run-dir")
    aside = path.with_name(f"{path.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    suffix = 1
    while aside.exists():
        suffix += 1
        aside = aside.with_name(f"{path.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}")
    try:
        path.rename(aside)
    except OSError as exc:
        raise FedRayError(f"cannot move the old run {path} aside: {describe_os_error(exc)}") from None
    logging.getLogger(__name__).warning("moved the run that was in %s to %s", path, aside)
