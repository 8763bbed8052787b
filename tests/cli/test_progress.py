"""``fedray run`` prints one progress line per round through a round observer."""

from __future__ import annotations

from pathlib import Path

from fedray.cli.run import ProgressLines
from fedray.engine.history import RoundRecord
from fedray.engine.observers import RunStart


def test_progress_lines_count_rounds_up_to_the_run_modes_last(capsys):
    progress = ProgressLines()
    progress.on_start(RunStart(Path("run"), None, 0, 5))
    progress.on_round(RoundRecord(server_round=0, eval={"accuracy": 0.25}))
    progress.on_round(RoundRecord(server_round=1, clients=[0, 2], train_loss=1.25, bytes_sent=2**20))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("round   0/5 | acc 0.250")
    assert lines[1] == "round   1/5 | clients 2/2 | loss 1.250 | 1.00 MiB"
