"""The evidence grids (cells, seeds, run directories, scenario files) and ``fedray evidence`` on run
directories written by hand (the report) or listed only (a dry run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fedray.cli.main import main as cli_main
from fedray.config.load import load_scenario
from fedray.errors import FedRayError
from fedray.report.evidence_grid import GRIDS, METHODS, Block, Grid, get_grid
from fedray.report.tables import method_of


def test_the_reduced_grid_runs_each_claim_s_pairs_once_per_seed():
    grid = get_grid("reduced")
    cells = grid.cells()
    assert len(cells) == 9 * 3 and len(grid.seeds) >= 3
    assert len({(c.scenario, c.method, c.seed) for c in cells}) == len(cells)
    assert [c.seed for c in cells[:9]] == [0] * 9  # seed-major
    by_scenario = {s: {c.method for c in cells if c.scenario == s} for s in grid.scenarios}
    assert by_scenario == {
        "aligned-a0.5": {"zero_shot", "local", "centralized", "fedavg"},
        "missing-b0.5": {"fedavg", "fedavg+adaptive_prox"},
        "missing-b0.5-aug": {"fedavg"}, "cross-k5": {"fedavg"}, "hybrid-q0.4": {"fedavg"}}
    assert "federation.rounds=20" in grid.budget
    assert {c.run_dir(Path("out")) for c in cells[:2]} == {Path("out/aligned-a0.5/zero_shot/seed0"),
                                                          Path("out/aligned-a0.5/local/seed0")}


def test_the_full_grid_covers_the_issue():
    grid = get_grid("full")
    assert len(grid.scenarios) == 24 and len(grid.seeds) >= 3
    assert {"zero_shot", "local", "centralized", "fedavg", "fedavg+fedprox",
            "fedadagrad-fedmllm+adaptive_prox"} <= set(grid.methods)
    assert {"federation.rounds=60", "eval.every=5"} <= set(grid.budget)  # the plateau curves' reading


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_every_cell_loads_and_is_named_as_the_report_names_it(name):
    cells = get_grid(name).cells()
    for cell in {(c.scenario, c.method): c for c in cells}.values():  # one seed is enough to load
        scenario = load_scenario(cell.scenario_file(), list(cell.overrides))
        assert scenario.seed == cell.seed and scenario.model.tiny.vision == "efficientnet_lite0"
        config = yaml.safe_load(yaml.safe_dump({"mode": scenario.mode, "strategy": {
            "name": scenario.strategy.name, **scenario.strategy.options},
            "objective": {"name": scenario.objective.name}}))
        assert method_of(config) == cell.method


def test_the_regularization_pairs_differ_only_in_the_objective():
    """Adaptive regularization is measured against the same server rule with the same settings."""
    for base in ("fedavg", "fedadagrad-fedmllm"):
        with_reg = METHODS[f"{base}+adaptive_prox"]
        assert with_reg[:len(METHODS[base])] == METHODS[base]
        assert all(o.startswith("objective.") for o in with_reg[len(METHODS[base]):])
    scenario = load_scenario(get_grid("full").cells()[0].scenario_file(), list(METHODS["fedadagrad-fedmllm"]))
    assert scenario.strategy.options == {"variant": "fedmllm", "eta": 0.06, "tau": 0.03}


def test_unknown_grid_or_method_is_an_error():
    with pytest.raises(FedRayError, match="choose from"):
        get_grid("huge")
    with pytest.raises(FedRayError, match="unknown methods"):
        Grid("x", (Block(("missing-b0.5",), ("fedsomething",)),), (0,)).cells()
    assert set(METHODS) >= set(get_grid("full").methods)


def test_dry_run_lists_the_commands(capsys):
    assert cli_main(["evidence", "run", "--grid", "smoke", "--out", "somewhere", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 runs under somewhere" in out
    assert "somewhere/missing-b0.5/fedavg/seed1: fedray run scenarios/evidence/missing-b0.5.yaml" in out


def _fake_run(root: Path, scenario: str, method: str, seed: int, accuracy: float) -> None:
    run = root / scenario / method / f"seed{seed}"
    run.mkdir(parents=True)
    mode = method if method in ("zero_shot", "local", "centralized") else "federated"
    (run / "config.yaml").write_text(yaml.safe_dump({
        "name": f"evidence-{scenario}", "mode": mode, "seed": seed, "strategy": {"name": "fedavg"},
        "eval": {"select_metric": "accuracy"}}))
    rounds = [{"round": 1, "eval": {"accuracy": accuracy / 2}}, {"round": 2, "eval": {"accuracy": accuracy}}]
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rounds))


def test_report_writes_the_marked_section_with_claims(tmp_path):
    root = tmp_path / "runs"
    for seed, (fed, local) in enumerate([(0.8, 0.5), (0.7, 0.5), (0.75, 0.45)]):
        _fake_run(root, "missing-b0.5", "fedavg", seed, fed)
        _fake_run(root, "missing-b0.5", "local", seed, local)
    (root / "timings.jsonl").write_text('{"run": "a", "seconds": 60.0}\n{"run": "b", "seconds": 30.0}\n')
    doc = tmp_path / "docs" / "results.md"
    doc.parent.mkdir()
    doc.write_text("# Results\n\nbefore\n<!-- evidence:start -->\nold\n<!-- evidence:end -->\nafter\n")
    assert cli_main(["evidence", "report", str(root), "--write", str(doc), "--cite", "make evidence"]) == 0
    text = doc.read_text()
    assert text.startswith("# Results\n\nbefore\n<!-- evidence:start -->\nMade by `make evidence`")
    assert "old" not in text and text.endswith("<!-- evidence:end -->\nafter\n")
    assert "1.5 min of run time" in text and "| evidence-missing-b0.5 | 0.483 ± " in text
    assert ("| federated > local-only | **reproduced** | federated > local-only in 1 of 1 cells, "
            "mean +0.267") in text
    curves = list((tmp_path / "docs" / "results").glob("curves-*.png"))
    assert len(curves) == 1 and f"]({curves[0].relative_to(doc.parent)})" in text


def test_run_skips_finished_cells_resumes_checkpointed_ones_and_restarts_the_rest(tmp_path, monkeypatch,
                                                                                 capsys):
    import fedray.engine.runtime as runtime
    import fedray.engine.simulation as simulation
    from fedray.engine.summary import RunSummary

    out = tmp_path / "out"
    cells = get_grid("smoke").cells()
    done, checkpointed, broken = (c.run_dir(out) for c in cells[:3])
    for path in (done, checkpointed, broken):
        path.mkdir(parents=True)
    (done / "summary.json").write_text('{"final_eval": {"accuracy": 0.5}}')
    (checkpointed / "config.yaml").write_text("name: x\n")
    (checkpointed / "checkpoint.pt").write_bytes(b"")
    (broken / "config.yaml").write_text("name: x\n")  # stopped before its first checkpoint,
    (broken / "summary.json").write_text('{"final_eval": {}}')  # failing with an empty summary
    calls = []

    def fake_run(scenario, run_dir, resume=False):
        calls.append((Path(run_dir), resume, scenario.seed))
        assert resume or not Path(run_dir).exists()  # a fresh start gets an empty place
        return RunSummary(run_dir=Path(run_dir))

    monkeypatch.setattr(simulation, "run", fake_run)
    monkeypatch.setattr(runtime, "ensure_ray", lambda resources: False)
    assert cli_main(["evidence", "run", "--grid", "smoke", "--out", str(out)]) == 0
    assert calls == [(checkpointed, True, cells[1].seed), (broken, False, cells[2].seed),
                     (cells[3].run_dir(out), False, cells[3].seed)]
    assert "1 done, 3 to run" in capsys.readouterr().out
    timings = [json.loads(line) for line in (out / "timings.jsonl").read_text().splitlines()]
    assert [t["resumed"] for t in timings] == [True, False, False]


def test_a_subset_keeps_the_budget_and_refuses_what_the_grid_lacks():
    grid = get_grid("reduced").subset(scenarios="aligned-a0.5,missing-b0.5", methods="local,fedavg",
                                      seeds="2")
    assert [(c.scenario, c.method, c.seed) for c in grid.cells()] == [
        ("aligned-a0.5", "local", 2), ("aligned-a0.5", "fedavg", 2), ("missing-b0.5", "fedavg", 2)]
    assert grid.budget == get_grid("reduced").budget
    with pytest.raises(FedRayError, match=r"has no seeds \[7\]"):
        get_grid("reduced").subset(seeds="0,7")


def test_a_failed_run_is_reported_and_the_grid_goes_on(tmp_path, monkeypatch, capsys):
    import fedray.engine.runtime as runtime
    import fedray.engine.simulation as simulation
    from fedray.engine.summary import RunSummary

    seen = []

    def flaky_run(scenario, run_dir, resume=False):
        seen.append(scenario.seed)
        if len(seen) == 1:
            raise FedRayError("actors did not start")
        return RunSummary(run_dir=Path(run_dir))

    monkeypatch.setattr(simulation, "run", flaky_run)
    monkeypatch.setattr(runtime, "ensure_ray", lambda resources: False)
    assert cli_main(["evidence", "run", "--grid", "smoke", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert len(seen) == 4 and "failed: actors did not start" in out and "3 runs in" in out
    assert "1 failed (run the same command again to retry them)" in out
