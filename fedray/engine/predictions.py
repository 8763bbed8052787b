"""``eval.save_predictions``: each evaluated round's test answers, one JSON line per sample, on disk.

Files: ``<run>/predictions/round_NNN.jsonl`` (round 0 is the initial model), one per evaluated round, so a
resumed run that evaluates a round again rewrites that round's file whole (written, then renamed) and a
reader can take one round without reading the others. A line is a record of
:func:`fedray.client.predictions.prediction_records` (``id``, ``kind``, ``prompt``, ``generated``,
``parsed``, ``answer``, ``valid``, ``correct``, ...) with the round, the eval ``set`` and the test
``condition``; in the local baseline each client's adapter answers the test set and ``client`` says whose.
The validation split is not written (it picks the best round; the test set is what is reported).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

PREDICTIONS_DIR = "predictions"
_ROUND_FILE = re.compile(r"round_(\d+)\.jsonl")


def predictions_path(run_dir: str | Path, server_round: int) -> Path:
    return Path(run_dir) / PREDICTIONS_DIR / f"round_{server_round:03d}.jsonl"


class PredictionLog:
    """Collects the records of the adapters evaluated in one round, then writes them as that round's file."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._batches: list[list[dict[str, Any]]] = []  # one per adapter tested this round

    def start_adapter(self) -> None:
        """A new adapter is being tested (the local baseline tests one per client in a round)."""
        self._batches.append([])

    def add(self, set_name: str, condition: str, records: list[dict[str, Any]]) -> None:
        if not self._batches:
            self.start_adapter()
        self._batches[-1] += [{"set": set_name, "condition": condition, **r} for r in records]

    def write(self, server_round: int) -> Path | None:
        """Write what was collected as ``predictions/round_NNN.jsonl`` and start afresh; None if nothing."""
        batches, self._batches = self._batches, []
        if not any(batches):
            return None
        several = len(batches) > 1
        lines = [json.dumps({"round": server_round, **({"client": c} if several else {}), **r},
                            ensure_ascii=False)
                 for c, batch in enumerate(batches) for r in batch]
        path = predictions_path(self.run_dir, server_round)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def prediction_rounds(run_dir: str | Path) -> list[int]:
    """The rounds a run directory holds predictions of, in order."""
    folder = Path(run_dir) / PREDICTIONS_DIR
    found = (_ROUND_FILE.fullmatch(p.name) for p in folder.glob("round_*.jsonl")) if folder.is_dir() else ()
    return sorted(int(m.group(1)) for m in found if m)


def read_predictions(run_dir: str | Path, server_round: int) -> Iterator[dict[str, Any]]:
    """The records of one round's predictions file."""
    with predictions_path(run_dir, server_round).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
