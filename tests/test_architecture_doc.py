"""docs/architecture.md stays true: its examples run, and the layering it states holds."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

#: Each package and the packages it may import (module level), from the doc's layer diagram.
LAYERS = ["config registry errors seeding flat lazy cache_files", "data", "models", "client", "strategies",
          "engine", "tune bench report", "cli"]

# Run in a fresh interpreter: the examples register plug-ins, which must not leak into other tests.
CHECKS = """
import torch
from fedray.config import scenario_from_dict
from fedray.data.sources import read_source
from fedray.engine.modes import build_run_mode
from fedray.errors import ConfigError
from fedray.models.families import FAMILIES, lora_targets
from fedray.config.schema import LoraConfig
from fedray.strategies import ClientResult, build_strategy

x = {"w": torch.tensor([0.0, 0.0], dtype=torch.float64)}
results = [ClientResult(0, 1, {"w": torch.tensor([1.0, 0.0], dtype=torch.float64)}),
           ClientResult(1, 3, {"w": torch.tensor([0.0, 4.0], dtype=torch.float64)})]
new, _ = build_strategy("example_damped_avg", {"server_lr": 0.5}).aggregate_fit(1, x, results, [])
assert new["w"].tolist() == [0.125, 1.5], new  # 0.5 * ([1, 0]/4 + 3 * [0, 4]/4)
try:
    scenario_from_dict({"strategy": {"name": "example_damped_avg", "server_lr": 2}})
except ConfigError as err:
    assert err.problems == ["strategy.server_lr: got 2.0, must be <= 1"], err.problems
else:
    raise AssertionError("server_lr=2 was accepted")

table = read_source("example_parity", {"size": 10}).splits["train"]
assert table.num_rows == 10 and table.column("answer").to_pylist()[:3] == ["even", "odd", "even"]
s = scenario_from_dict({"data": {"source": "example_parity", "size": 50},
                        "mode": "example_full_participation",
                        "partition": {"name": "iid", "num_clients": 4, "min_client_size": 2}})
assert build_run_mode(s).cohort(1, 4, None) == [0, 1, 2, 3]

assert "example_family" in FAMILIES
assert "text_decoder" in lora_targets(LoraConfig(), "example_family")
print("examples ok")
"""


def _examples() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- example -->\s*```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 4, "the doc has one example per kind: strategy, source, family, run mode"
    return blocks


def test_the_documented_examples_run():
    script = "\n\n".join(_examples()) + "\n" + textwrap.dedent(CHECKS)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "examples ok" in done.stdout


def _package_imports() -> dict[str, set[str]]:
    """Top-level package → the fedray packages its modules import at module level (not under
    ``if TYPE_CHECKING``, not inside functions, where lazy imports of heavy modules are deliberate)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "fedray").rglob("*.py"):
        parts = path.relative_to(ROOT / "fedray").with_suffix("").parts
        package = parts[0] if len(parts) > 1 else parts[0]
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fedray."):
                found.setdefault(package, set()).add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found.setdefault(package, set()).update(
                    a.name.split(".")[1] for a in node.names if a.name.startswith("fedray."))
    return found


def test_no_package_imports_a_layer_above_it():
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer.split()}
    upward = [(pkg, dep) for pkg, deps in _package_imports().items() if pkg in rank
              for dep in deps if dep in rank and rank[dep] > rank[pkg]]
    assert upward == []


def _module_graph() -> dict[str, set[str]]:
    """fedray module → the fedray modules it imports at module level; ``from pkg import sub`` counts as
    importing the submodule, and an ``__init__`` importing its own submodules (to register them) is
    not an edge back."""
    modules = {}
    for path in (ROOT / "fedray").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fedray"):
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                         for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("fedray")}
        graph[name] = {d for d in deps if d in modules and d != name and not d.startswith(name + ".")}
    return graph


def test_no_import_cycle():
    graph, state, cycles = _module_graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
