"""The run directory: resolved config, manifest, history, log, summary and the adapters."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedray.config.load import dump_scenario
from fedray.config.schema import Scenario
from fedray.engine.history import HistoryWriter
from fedray.errors import FedRayError

if TYPE_CHECKING:  # the models package loads transformers, which the driver must not import
    from fedray.models.lora import AdapterState


@dataclass
class RunDir:
    path: Path
    _log_handler: logging.Handler | None = None

    @classmethod
    def create(cls, scenario: Scenario, path: str | Path | None = None) -> RunDir:
        """Make the directory (``<output.root>/<name>-<timestamp>`` by default) and write the config."""
        if path is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(scenario.output.root) / f"{scenario.name}-{stamp}"
            suffix = 1
            while path.exists():
                suffix += 1
                path = Path(scenario.output.root) / f"{scenario.name}-{stamp}-{suffix}"
        run = cls(Path(path))
        run.path.mkdir(parents=True, exist_ok=True)
        dump_scenario(scenario, run.config_path)
        run._attach_log()
        return run

    @classmethod
    def reopen(cls, path: str | Path) -> RunDir:
        """An existing run directory, to resume: its config is kept as written."""
        run = cls(Path(path))
        if not run.config_path.exists():
            raise FedRayError(f"{path} is not a fedray run directory (no config.yaml)")
        run._attach_log()
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

    def history_writer(self) -> HistoryWriter:
        """The observer that appends each round to ``history.jsonl``: every run keeps one, since a
        resumed run reads its rounds back from it."""
        return HistoryWriter(self.history_path)

    def save_adapter(self, state: AdapterState, name: str = "global_adapter",
                     config: dict | None = None) -> Path:
        """Write an adapter as the PEFT adapter directory ``<name>/`` (:mod:`fedray.engine.adapter_files`)."""
        from fedray.engine.adapter_files import write_adapter_dir

        return write_adapter_dir(self.path / name, state, config)

    def save_summary(self, summary: dict) -> Path:
        """Write ``summary.json`` (the run's headline results) atomically."""
        path = self.path / "summary.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    def _attach_log(self) -> None:
        handler = logging.FileHandler(self.path / "run.log", encoding="utf-8")
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
