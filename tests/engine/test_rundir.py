"""A run directory protects its results: a resume is checked before anything starts or is written, and
a failed one leaves every file byte-identical; a run is never started into another run's directory.

These tests build a stopped run's directory by hand (config, history, a checkpoint the way the aggregator
writes it) so that they need no Ray: everything checked here happens before Ray starts.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fedray.cli.main import main as cli
from fedray.engine.checkpoint import save_checkpoint
from fedray.engine.history import RoundRecord
from fedray.engine.resume import config_fingerprint, plan_resume
from fedray.engine.rundir import RunDir
from fedray.engine.simulation import Simulation
from fedray.errors import FedRayError
from tests.engine.test_simulation import small_scenario


def _scenario(rounds: int = 3):
    base = small_scenario()
    return replace(base, federation=replace(base.federation, rounds=rounds))


def _stopped_run(path: Path, checkpoint_round: int = 1, history_rounds: int = 2, rounds: int = 3) -> Path:
    """A run stopped after writing round ``history_rounds``'s record, checkpointed at ``checkpoint_round``."""
    run = RunDir.create(_scenario(rounds), path)
    run.close_log()
    for r in range(history_rounds + 1):
        run.history_writer().append(RoundRecord(server_round=r, clients=[0, 1, 2] if r else [],
                                                eval={"accuracy": 0.1 * r}))
    save_checkpoint(path, {"round": checkpoint_round,
                           "aggregator": {"global_state": {"w": torch.zeros(2)}, "strategy": {"m": None},
                                          "clients": {}},
                           "driver": {"best_validation": 0.5, "best_round": checkpoint_round,
                                      "config_sha256": config_fingerprint(run.config_path)}})
    run.save_summary({"rounds_completed": history_rounds, "best_round": 1})
    (path / "global_adapter.safetensors").write_bytes(b"trained adapter bytes")
    return path


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch evil-was-run",))


def _corrupt_checkpoint(path: Path, how: str) -> None:
    checkpoint = path / "checkpoint.pt"
    if how == "missing":
        checkpoint.unlink()
    elif how == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    elif how == "empty":
        checkpoint.write_bytes(b"")
    elif how == "wrong structure":
        torch.save({"format": 2, "round": "two", "weights": torch.ones(2)}, checkpoint)
    elif how == "malicious":
        torch.save({"format": 2, "round": 1, "aggregator": _Evil(), "driver": {}}, checkpoint)
    elif how == "plain pickle":
        checkpoint.write_bytes(pickle.dumps({"format": 2}))


@pytest.mark.parametrize("how", ["missing", "truncated", "empty", "wrong structure", "malicious",
                                 "plain pickle"])
def test_a_bad_checkpoint_fails_the_resume_and_changes_nothing(tmp_path, how, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _stopped_run(tmp_path / "run")
    _corrupt_checkpoint(run, how)
    before = _files(run)
    with pytest.raises(FedRayError, match="cannot resume .*checkpoint|no checkpoint.pt") as info:
        Simulation(_scenario(), run, resume=True).execute()
    assert "Traceback" not in str(info.value)
    assert _files(run) == before, "a failed resume leaves every file as it was"
    assert not (tmp_path / "evil-was-run").exists(), "a malicious pickle is refused, never run"


@pytest.mark.parametrize("how", ["garbage line", "deleted", "rounds missing", "config changed"])
def test_a_history_or_config_that_does_not_match_fails_the_resume(tmp_path, how):
    run = _stopped_run(tmp_path / "run")
    history = run / "history.jsonl"
    lines = history.read_text().splitlines(keepends=True)
    if how == "garbage line":
        history.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    elif how == "deleted":
        history.unlink()
    elif how == "rounds missing":
        history.write_text(lines[0])
    else:
        (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("seed: 3", "seed: 4"))
    before = _files(run)
    expected = {"garbage line": r"history.jsonl, line 2: not a round record",
                "deleted": "history.jsonl does not exist", "rounds missing": "holds no trained round",
                "config changed": "config.yaml changed"}[how]
    with pytest.raises(FedRayError, match=expected):
        Simulation(_scenario(), run, resume=True)
    assert _files(run) == before


def test_a_cut_last_history_line_is_repaired_with_a_message(tmp_path):
    run = _stopped_run(tmp_path / "run", checkpoint_round=2, history_rounds=2)
    with (run / "history.jsonl").open("a") as handle:
        handle.write('{"round": 3, "clients": [0, ')  # killed mid-write
    plan = plan_resume(run, last_round=3)
    assert plan.checkpoint_round == 2 and [r["round"] for r in plan.records] == [0, 1, 2]
    assert any("last line was cut short" in note for note in plan.notes)
    sim = Simulation(_scenario(), run, resume=True)
    sim.run.close_log()
    sim.observers.members[0].append(RoundRecord(server_round=3))  # the resumed run's first round
    rounds = [json.loads(line)["round"] for line in (run / "history.jsonl").read_text().splitlines()]
    assert rounds == [0, 1, 2, 3]


def test_rounds_after_the_checkpoint_are_dropped_only_when_a_round_is_redone(tmp_path):
    run = _stopped_run(tmp_path / "run", checkpoint_round=1, history_rounds=2)
    before = _files(run)
    sim = Simulation(_scenario(), run, resume=True)
    sim.run.close_log()
    assert {k: v for k, v in _files(run).items() if k != "run.log"} == \
        {k: v for k, v in before.items() if k != "run.log"}
    sim.observers.members[0].append(RoundRecord(server_round=2))
    assert [json.loads(x)["round"] for x in (run / "history.jsonl").read_text().splitlines()] == [0, 1, 2]


def test_resuming_a_finished_run_says_so_at_once(tmp_path, capsys):
    run = _stopped_run(tmp_path / "run", checkpoint_round=3, history_rounds=3)
    (run / "summary.json").write_text(json.dumps({"rounds_completed": 3, "best_round": 2}))
    before = _files(run)
    sim = Simulation(_scenario(), run, resume=True)
    assert sim.already_finished
    summary = sim.execute()  # no Ray: nothing to run
    assert [r.server_round for r in summary.rounds] == [0, 1, 2, 3] and summary.best_round == 2
    assert cli(["run", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "has finished all its rounds" in out and str(run / "summary.json") in out
    assert _files(run) == before


def test_cli_resume_of_a_damaged_run_exits_2_and_changes_nothing(tmp_path, capsys):
    run = _stopped_run(tmp_path / "run")
    (run / "checkpoint.pt").write_bytes(b"\x00" * 10)
    before = _files(run)
    assert cli(["run", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "Traceback" not in err
    assert _files(run) == before


def test_a_directory_holding_a_run_is_refused_unless_overwrite(tmp_path):
    run = _stopped_run(tmp_path / "run")
    before = _files(run)
    with pytest.raises(FedRayError, match="already holds a run.*--resume.*--overwrite"):
        RunDir.create(_scenario(), run)
    assert _files(run) == before
    fresh = RunDir.create(_scenario(), run, overwrite=True)
    fresh.close_log()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and _files(aside[0]) == before, "the old run is moved aside, intact"
    assert sorted(_files(run)) == ["config.yaml", "run.log"]


def test_an_empty_directory_is_used_and_a_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    RunDir.create(_scenario(), tmp_path / "empty").close_log()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FedRayError, match="is a file"):
        RunDir.create(_scenario(), tmp_path / "afile")


def test_report_names_a_damaged_history(tmp_path, capsys):
    run = _stopped_run(tmp_path / "run")
    history = run / "history.jsonl"
    history.write_text(history.read_text() + "garbage\n" + '{"round": 9}\n')
    assert cli(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "history.jsonl" in err and "line 4" in err and "Traceback" not in err


def test_a_finished_run_without_checkpoint_has_nothing_to_resume(tmp_path, capsys):
    run = _stopped_run(tmp_path / "run", checkpoint_round=3, history_rounds=3)
    (run / "summary.json").write_text(json.dumps({"rounds_completed": 3, "best_round": None}))
    (run / "checkpoint.pt").unlink()  # federation.checkpoint_every: 0
    with pytest.raises(FedRayError, match="finished all its rounds .*no checkpoint.pt to resume from"):
        Simulation(_scenario(), run, resume=True)
    assert cli(["run", "--resume", str(run)]) == 0
    assert "nothing to resume" in capsys.readouterr().out


def test_a_run_directory_that_cannot_be_made_is_a_clear_error(tmp_path):
    with pytest.raises(FedRayError, match="cannot create the run directory .*choose another"):
        RunDir.create(_scenario(), tmp_path / ("x" * 300))  # a name longer than the file system allows
    (tmp_path / "root-file").write_text("x")
    s = _scenario()
    s = replace(s, output=replace(s.output, root=str(tmp_path / "root-file")))
    with pytest.raises(FedRayError, match="cannot create the run directory"):
        RunDir.create(s)
