"""Entry points in the group ``fedray.plugins``: an installed package's modules register plug-ins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedray import plugins

PLUGIN_MODULE = '''
from dataclasses import dataclass

from fedray.data.schema import samples_to_table
from fedray.data.sources.base import DATA_SOURCES, SourceData
from fedray.strategies.fedavg import FedAvg
from fedray.strategies.registry import register


@dataclass(frozen=True)
class ConstParams:
    size: int = 4


@DATA_SOURCES.register("fakeplug_const", params=ConstParams)
def const(params):
    rows = [{"id": f"c{i}", "question": "?", "answer": "yes", "label": 0, "task": "const",
             "source": "fakeplug_const"} for i in range(params.size)]
    return SourceData(splits={"train": samples_to_table(rows)}, label_names=("yes",), task="const")


@register("fakeplug_avg")
class FakeAvg(FedAvg):
    """FedAvg under another name, registered by an installed package."""
'''


def fake_distribution(root: Path, module: str = "fakeplug_mod", body: str = PLUGIN_MODULE) -> Path:
    """A package 'fakeplug' as pip would install it: its module and a dist-info with entry points."""
    (root / f"{module}.py").write_text(body)
    info = root / "fakeplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[fedray.plugins]\nfakeplug = {module}\n")
    return root


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Plug-ins load again, and what they register is gone after the test (the registries as shipped)."""
    from fedray.data.sources import DATA_SOURCES
    from fedray.strategies import STRATEGIES

    for registry in (DATA_SOURCES, STRATEGIES):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_params", dict(registry._params))
    for module in ("fakeplug_mod", "brokenplug_mod"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    plugins.reset_for_tests()
    yield
    plugins.reset_for_tests()


def test_an_installed_package_adds_a_source_and_a_strategy(tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.syspath_prepend(str(fake_distribution(tmp_path)))
    from fedray.data.sources import DATA_SOURCES, read_source
    from fedray.strategies import STRATEGIES

    assert "fakeplug_avg" in STRATEGIES  # the first lookup imports the entry point's module
    assert "fakeplug_const" in DATA_SOURCES.names()
    assert read_source("fakeplug_const", {"size": 3}).splits["train"].num_rows == 3
    assert plugins.load_plugins() == []  # once per process


def test_a_broken_plugin_names_its_package(tmp_path, monkeypatch, fresh_plugins):
    broken = fake_distribution(tmp_path, "brokenplug_mod", "import no_such_module_x\n")
    monkeypatch.syspath_prepend(str(broken))
    with pytest.raises(plugins.PluginError, match=r"'fakeplug' \(brokenplug_mod, from fakeplug\) failed.*"
                                                  r"no_such_module_x.*pip uninstall fakeplug"):
        plugins.load_plugins()


def test_a_fresh_process_validates_a_scenario_naming_the_plugin(tmp_path):
    fake_distribution(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    code = ("from fedray.config import scenario_from_dict\nimport fedray.checks\n"
            "s = scenario_from_dict({'data': {'source': 'fakeplug_const', 'size': 30},"
            " 'strategy': {'name': 'fakeplug_avg'}})\nprint(s.strategy.name, s.data.options)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "fakeplug_avg {'size': 30}"
