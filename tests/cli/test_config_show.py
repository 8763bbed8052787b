"""``fedray config show``: the resolved scenario with its plug-ins' parameters, and plug-in listings."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Literal, Optional

import pytest

from fedray.cli import config as config_cmd
from fedray.cli.main import main
from fedray.config import Scenario, build_dataclass, load_scenario, scenario_to_dict
from fedray.config.schema import spec
from fedray.config.yamlio import parse_yaml
from fedray.registry import Registry

MINI = str(Path(__file__).resolve().parents[2] / "scenarios" / "mini.yaml")


@dataclasses.dataclass(frozen=True)
class ProbeParams:
    """Parameters of a strategy that exists only in this test."""

    eta: float = spec(0.01, gt=0.0, help="server step size")
    momentum: float = spec(0.9, ge=0.0, lt=1.0, help="server momentum")
    rule: Literal["mean", "median"] = spec("mean", help="how updates are combined")
    clip: Optional[float] = spec(None, gt=0.0, help="clip each update to this norm (null: off)")


@pytest.fixture
def probe_strategies(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A fresh strategy registry with one rule that has parameters and one that has none."""
    registry: Registry = Registry("strategy")

    @registry.register("probe-rule", params=ProbeParams)
    class ProbeRule:
        """A rule for tests. More text that the listing leaves out."""

    registry.register("bare")(type("Bare", (), {"__doc__": "A rule without parameters."}))
    real = config_cmd.registry_of
    monkeypatch.setattr(config_cmd, "registry_of",
                        lambda kind: registry if kind == "strategy" else real(kind))
    return registry


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def line_of(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(start))


def test_plugin_listing_shows_each_parameter_with_type_bounds_default_and_help(capsys, probe_strategies):
    code, out, _ = run_cli(capsys, "config", "show", "--plugins", "strategy")
    assert code == 0
    assert "# strategy: 2 registered" in out
    assert "probe-rule: A rule for tests." in out and "More text" not in out
    assert line_of(out, "eta").split() == ["eta", "a", "number", ">", "0", "0.01", "server", "step", "size"]
    momentum = line_of(out, "momentum")
    assert ">= 0 < 1" in momentum and "0.9" in momentum and "server momentum" in momentum
    assert "one of 'mean', 'median'" in line_of(out, "rule")
    assert "a number or null" in line_of(out, "clip") and "null" in line_of(out, "clip")
    assert line_of(out, "parameter").split() == ["parameter", "type", "bounds", "default", "help"]
    bare = out[out.index("bare:"):out.index("probe-rule:")]
    assert "no parameters" in bare


def test_plugin_values_come_from_the_scenario_and_unknown_options_are_named(probe_strategies):
    lines = config_cmd.describe_plugin(probe_strategies, "probe-rule", values={"eta": 0.5, "zeta": 2},
                                       options={"eta": 0.5, "zeta": 2})
    assert lines[0].split()[:2] == ["parameter", "value"]
    eta = line_of("\n".join(lines), "eta").split()
    assert eta[:2] == ["eta", "0.5"] and "0.01" in eta  # the value given, then the default
    assert "(default)" in line_of("\n".join(lines), "momentum")
    assert lines[-1] == "options that are not declared parameters: zeta=2"
    assert config_cmd.describe_plugin(probe_strategies, "bare") == ["no parameters"]


def test_scenario_show_lists_each_chosen_plugin(probe_strategies):
    scenario, problems = build_dataclass(Scenario, {"strategy": {"name": "probe-rule", "eta": 0.25}})
    assert not problems
    text = config_cmd.show_scenario(scenario, "x.yaml")
    plugins = text[text.index("# plug-ins chosen by this scenario"):]
    for header in ("strategy 'probe-rule' (strategy.name)", "objective 'plain' (objective.name)",
                   "data source 'digits' (data.source)", "partitioner 'dirichlet' (partition.name)",
                   "modality 'aligned' (modality.name)", "model builder 'tiny-vlm' (model.name)",
                   "train engine 'torch' (train.engine.name)"):
        assert f"# {header}" in plugins, header
    assert line_of(plugins, "#   eta").split()[1:3] == ["eta", "0.25"]


def test_show_prints_the_resolved_scenario_with_the_override(capsys):
    code, out, _ = run_cli(capsys, "config", "show", MINI, "train.lr=0.0123", "federation.rounds=7")
    assert code == 0
    resolved = parse_yaml(out)  # the plug-in part is YAML comments: the output is a scenario file
    assert resolved["train"]["lr"] == 0.0123 and resolved["federation"]["rounds"] == 7
    assert resolved["eval"]["at_start"] is True  # a default the file does not write
    expected = load_scenario(MINI, ["train.lr=0.0123", "federation.rounds=7"])
    assert resolved == scenario_to_dict(expected)
    assert "with train.lr=0.0123 federation.rounds=7" in out.splitlines()[0]
    assert "# strategy 'fedavg' (strategy.name)" in out


def test_show_reports_scenario_problems_like_validate(capsys):
    code, out, err = run_cli(capsys, "config", "show", MINI, "train.lr=-1", "strategy.name=fedavgg")
    assert code == 2 and not out
    assert "train.lr: got -1.0, must be > 0" in err and "fedavgg" in err


def test_show_needs_a_scenario_or_a_kind(capsys):
    code, _, err = run_cli(capsys, "config", "show")
    assert code == 2 and "needs a scenario file" in err and "--plugins" in err
    code, _, err = run_cli(capsys, "config", "show", MINI, "--plugins", "strategy")
    assert code == 2 and "not both" in err


@pytest.mark.parametrize("kind", list(config_cmd.PLUGIN_REGISTRIES))
def test_every_kind_names_a_registry_with_entries(kind):
    registry = config_cmd.registry_of(kind)
    assert isinstance(registry, Registry) and registry.names()
    assert config_cmd.list_plugins(kind).startswith(f"# {kind.replace('_', ' ')}:")


def test_the_command_module_imports_no_plugin_package_at_load_time():
    # The registries pull in torch; `fedray --help` must not pay for them.
    tree = ast.parse(Path(config_cmd.__file__).read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = [n.module if isinstance(n, ast.ImportFrom) else a.name for n in top_level
               for a in getattr(n, "names", [])]
    fedray_modules = [m for m in modules if m and m.startswith("fedray")]
    assert fedray_modules and all(m.startswith(("fedray.config.", "fedray.errors")) for m in fedray_modules)
