"""Scenario checks that need the plug-in registries (names, plug-in parameters, paths).

The config loader knows only the schema; importing this module registers these checks with it, so a
bad strategy name, an unknown strategy parameter or a missing data path shows up in the same single
error as every schema problem.
"""

from __future__ import annotations

from pathlib import Path

from fedray.config.load import register_semantic_check
from fedray.config.schema import Scenario
from fedray.data.partition import PARTITIONERS
from fedray.data.sources import DATA_SOURCES
from fedray.models import MODEL_BUILDERS
from fedray.strategies import param_problems


@register_semantic_check
def check_plugin_names(scenario: Scenario) -> list[str]:
    problems = []
    for path, registry, name in (("data.source", DATA_SOURCES, scenario.data.source),
                                 ("partition.name", PARTITIONERS, scenario.partition.name),
                                 ("model.name", MODEL_BUILDERS, scenario.model.name)):
        if name not in registry:
            problems.append(f"{path}: {registry.unknown_message(name)}")
    problems += [f"strategy: {p}" for p in param_problems(scenario.strategy.name,
                                                          dict(scenario.strategy.options))]
    return problems


@register_semantic_check
def check_paths(scenario: Scenario) -> list[str]:
    problems = []
    for path, value in (("data.root", scenario.data.root), ("model.path", scenario.model.path)):
        if value and not Path(value).expanduser().exists():
            problems.append(f"{path}: {value!r} does not exist; fix the path (or the environment "
                            f"variable it comes from)")
    if scenario.model.name == "hf" and not scenario.model.path:
        problems.append("model.path: model.name=hf needs the directory of a saved Hugging Face model")
    return problems
