"""Reports over fake run directories (config.yaml, history.jsonl, summary.json written here), and the
TensorBoard logger."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from fedray.cli.main import main
from fedray.config import scenario_from_dict
from fedray.config.load import dump_scenario
from fedray.engine.history import HistoryWriter, RoundRecord
from fedray.report.tables import (
    communication_table,
    fairness_table,
    find_runs,
    load_run,
    markdown,
    method_of,
    results_table,
    scenario_of,
)
from fedray.report.tensorboard import TensorBoardLogger

MIB = 2**20


def make_run(path: Path, name: str, curve: list[tuple[float, float]], *, strategy: str = "fedavg",
             objective: str = "plain", mode: str = "federated", seed: int = 0, summary: bool = True,
             clients: dict[int, float] | None = None, train: dict | None = None) -> Path:
    """A run directory whose round r (1-based) has test accuracy curve[r-1][0] and validation
    accuracy curve[r-1][1] (NaN: no validation), 1 MiB sent per round."""
    path.mkdir(parents=True)
    raw = {"name": name, "seed": seed, "mode": mode, "strategy": {"name": strategy},
           "objective": {"name": objective}, **({"train": train} if train else {})}
    dump_scenario(scenario_from_dict(raw), path / "config.yaml")
    writer = HistoryWriter(path / "history.jsonl")
    writer.append(RoundRecord(server_round=0, eval={"accuracy": 0.0}))
    for r, (test, val) in enumerate(curve, start=1):
        record = RoundRecord(server_round=r, train_loss=1.0 / r, eval={"accuracy": test}, bytes_sent=MIB)
        if val == val:
            record.validation = {"accuracy": val}
        if clients and r == len(curve):
            record.client_eval = {c: {"accuracy": v} for c, v in clients.items()}
        writer.append(record)
    if summary:
        (path / "summary.json").write_text(json.dumps({"name": name}), encoding="utf-8")
    return path


@pytest.fixture
def runs(tmp_path):
    nan = float("nan")
    root = tmp_path / "runs"
    # FedAvg on "aligned", two seeds: validation picks round 2 (0.6) and round 3 (0.8)
    make_run(root / "a", "offline-aligned-a0.5", [(0.5, 0.4), (0.6, 0.9), (0.7, 0.5)], seed=0)
    make_run(root / "b", "offline-aligned-a0.5-fedavg-seed1", [(0.5, 0.4), (0.6, 0.5), (0.8, 0.6)], seed=1)
    # FedAdam on "aligned": no validation split → the last evaluated round
    make_run(root / "c", "offline-aligned-a0.5", [(0.3, nan), (0.4, nan)], strategy="fedadam")
    # FedAvg + FedProx on "hybrid", a sweep trial the scheduler stopped (no summary.json), deeper down
    make_run(root / "sweep" / "trial_1" / "run", "offline-hybrid-q0.4-fedprox", [(0.2, 0.1), (0.25, 0.3)],
             objective="fedprox", summary=False)
    # the local baseline on "hybrid", with per-client evaluations
    make_run(root / "local", "offline-hybrid-q0.4", [(0.4, nan)], mode="local",
             clients={0: 0.2, 1: 0.4, 2: 0.6})
    return root


def test_runs_are_found_recursively_and_read(runs):
    paths = find_runs([runs])
    assert len(paths) == 5 and any(p.name == "run" for p in paths)
    assert find_runs([runs / "a"]) == [(runs / "a").resolve()]
    info = load_run(runs / "a")
    assert (info.value, info.best_round, info.rounds, info.mib_sent) == (0.6, 2, 3, 3.0)
    assert info.curve == [(0, 0.0), (1, 0.5), (2, 0.6), (3, 0.7)]
    assert load_run(runs / "c").value == 0.4  # no validation: last round


def test_method_and_scenario_come_from_the_config():
    config = {"name": "offline-aligned-a0.5-fedadam-seed3", "mode": "federated",
              "strategy": {"name": "fedadam"}, "objective": {"name": "plain"}}
    assert method_of(config) == "fedadam" and scenario_of(config) == "offline-aligned-a0.5"
    prox = {**config, "name": "mini_fedprox_s2", "objective": {"name": "fedprox"}}
    assert method_of(prox) == "fedadam+fedprox" and scenario_of(prox) == "mini"
    assert method_of({**config, "mode": "centralized"}) == "centralized"


def test_paper_table_is_mean_and_std_over_seeds(runs):
    infos = [load_run(p) for p in find_runs([runs])]
    rows = {r["method"]: r for r in results_table(infos)}
    assert list(rows) == ["local", "fedadam", "fedavg", "fedavg+fedprox"]  # baselines first
    assert rows["fedavg"]["offline-aligned-a0.5"] == "0.700 ± 0.100 (2)"
    assert rows["fedadam"]["offline-aligned-a0.5"] == "0.400 (1)"
    assert rows["fedavg+fedprox"]["offline-hybrid-q0.4"] == "0.250 (1)"
    assert rows["local"]["offline-aligned-a0.5"] == "-"
    comm = {r["method"]: r for r in communication_table(infos)}
    assert comm["fedavg"]["offline-aligned-a0.5"] == "3.0 ± 0.0"
    assert comm["fedadam"]["offline-aligned-a0.5"] == "2.0"


def test_a_two_configuration_sweep_gives_two_rows_and_seeds_are_still_averaged(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for trial, (lr, seed, test) in enumerate([(0.001, 0, 0.1), (0.001, 1, 0.3), (0.01, 0, 0.0)]):
        make_run(sweep / f"trial_{trial}" / "run", f"mini-seed{seed}", [(test, 0.5)], seed=seed,
                 train={"lr": lr})
    infos = [load_run(p) for p in find_runs([sweep])]
    rows = {r["method"]: r["mini"] for r in results_table(infos)}
    assert rows == {"fedavg [train.lr=0.001]": "0.200 ± 0.100 (2)", "fedavg [train.lr=0.01]": "0.000 (1)"}
    out = tmp_path / "report"
    assert main(["report", str(sweep), "--out", str(out)]) == 0
    assert "fedavg [train.lr=0.01]" in capsys.readouterr().out
    assert "row" in (out / "runs.csv").read_text().splitlines()[0]


def test_runs_differing_in_name_and_seed_only_share_a_row(runs):
    infos = [load_run(runs / "a"), load_run(runs / "b")]
    assert [r["method"] for r in results_table(infos)] == ["fedavg"]


def test_baselines_that_send_nothing_are_charged_nothing(tmp_path):
    local = load_run(make_run(tmp_path / "local", "mini", [(0.4, 0.4)], mode="local"))  # history: 1 MiB
    zero = load_run(make_run(tmp_path / "zero", "mini", [], mode="zero_shot"))
    assert local.mib_sent == 0.0 and zero.mib_sent == 0.0
    comm = {r["method"]: r["mini"] for r in communication_table([local, zero])}
    assert comm == {"zero_shot": "0.0", "local": "0.0"}


def test_fairness_uses_per_client_evaluations_and_skips_runs_without(runs):
    rows = fairness_table([load_run(p) for p in find_runs([runs])])
    assert rows == [{"method": "local", "scenario": "offline-hybrid-q0.4", "clients": 3, "mean": 0.4,
                     "std": pytest.approx(0.1633, abs=1e-4), "worst": 0.2, "best": 0.6}]
    assert fairness_table([load_run(runs / "a")]) == []


def test_markdown_renders_numbers_and_gaps():
    text = markdown([{"a": 0.123456, "b": None}, {"a": 2, "b": float("nan")}], ["a", "b"])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 0.1235 | - |", "| 2 | - |"]


def test_report_command_writes_tables_and_figures(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0.700 ± 0.100 (2)" in text and "per-client spread" in text
    for name in ("results.md", "results.csv", "runs.csv", "communication.md", "fairness.md",
                 "curves-offline-aligned-a0.5.png", "curves-offline-hybrid-q0.4.png",
                 "clients-offline-hybrid-q0.4.png"):
        assert (out / name).stat().st_size > 0, name
    assert len((out / "runs.csv").read_text().splitlines()) == 6


def test_report_on_a_directory_without_runs_is_an_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no run directories" in capsys.readouterr().err


def _scalars(event_file: Path) -> dict[str, list[tuple[int, float]]]:
    """Read (step, value) per tag from a TensorBoard event file: TFRecord framing around Event protos."""
    from tensorboardX.proto import event_pb2

    data, out, pos = event_file.read_bytes(), {}, 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
        pos += 12 + length + 4
        for value in event.summary.value:
            out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_tensorboard_logger_writes_each_rounds_scalars(tmp_path):
    board = TensorBoardLogger(tmp_path / "tb")
    if not board.enabled:
        pytest.skip("neither tensorboard nor tensorboardX is installed")
    board.on_round(RoundRecord(server_round=0, eval={"accuracy": 0.1}))
    board.on_round(RoundRecord(server_round=1, train_loss=2.0, eval={"accuracy": 0.5},
                               validation={"accuracy": 0.4}, time_s={"fit": 3.0}, bytes_sent=100))
    board.close()
    (event_file,) = (tmp_path / "tb").glob("events.out.tfevents.*")
    scalars = _scalars(event_file)
    assert scalars["eval/accuracy"] == [(0, pytest.approx(0.1)), (1, 0.5)]
    assert scalars["train_loss"] == [(1, 2.0)] and scalars["validation/accuracy"] == [(1, pytest.approx(0.4))]
    assert scalars["time_s/fit"] == [(1, 3.0)] and scalars["bytes/sent"] == [(1, 100.0)]


def test_tensorboard_logger_observes_a_run_in_its_run_directory(tmp_path):
    from fedray.engine.observers import RunStart
    from fedray.engine.summary import RunSummary

    board = TensorBoardLogger()
    assert not board.enabled  # without log_dir, nothing is opened before the run starts
    board.on_start(RunStart(tmp_path, None, 1, 1))
    if not board.enabled:
        pytest.skip("neither tensorboard nor tensorboardX is installed")
    board.on_round(RoundRecord(server_round=1, train_loss=1.5))
    board.on_finish(RunSummary(tmp_path), completed=True)
    assert not board.enabled  # closed
    (event_file,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    assert _scalars(event_file)["train_loss"] == [(1, 1.5)]


def test_tensorboard_logger_without_a_writer_is_a_no_op(tmp_path, monkeypatch):
    import fedray.report.tensorboard as tb

    monkeypatch.setattr(tb, "_summary_writer_class", lambda: None)
    board = tb.TensorBoardLogger(tmp_path / "tb")
    board.on_round(RoundRecord(server_round=1, train_loss=1.0))
    board.close()
    assert not board.enabled and not (tmp_path / "tb").exists()
