"""``fedray bench --quick --cases reference`` end to end: a real ``fedray run`` and plain-loop subprocess."""

from __future__ import annotations

import json

import pytest

from fedray.cli.main import main


@pytest.mark.slow  # 60-90 s on 2 shared cores: two subprocesses, one of them starting Ray
@pytest.mark.timeout(600)
def test_quick_reference_bench_writes_comparable_figures(tmp_path, capsys):
    assert main(["bench", "--quick", "--cases", "reference", "--out", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "bench.json").read_text())
    assert row["case"] == "reference" and row["rounds"] == 2
    for key in ("s_per_round", "limit_s", "efficiency", "plain_s_per_round", "plain_ratio", "startup_s",
                "plain_startup_s", "peak_rss_gib", "plain_peak_rss_gib", "driver_mb", "client_actor_mb",
                "aggregator_mb", "ray_services_mb"):
        assert row[key] > 0, key
    assert row["loss_max_abs_diff"] < 1e-3  # the plain loop trained exactly what fedray trained
    roles = row["engine"]["memory"]["roles"]
    assert roles["actor:ClientActor"]["processes"] == 2 and roles["driver"]["processes"] == 1
    assert row["peak_rss_gib"] * 1024 > roles["driver"]["total_mb"] + roles["actor:ClientActor"]["total_mb"]
    assert (tmp_path / "reference" / "run" / "history.jsonl").is_file()
    assert (tmp_path / "bench.png").is_file()
    out = capsys.readouterr().out
    assert "| reference | 10 | 5 |" in out and "fedray bench --cases reference --quick" in out
