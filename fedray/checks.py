"""Scenario checks that need the plug-in registries (names, plug-in parameters, paths).

The config loader knows only the schema; importing this module registers these checks with it, so a
bad strategy name, an unknown strategy parameter or a missing data path shows up in the same single
error as every schema problem.
"""

from __future__ import annotations

from pathlib import Path

from fedray.client.objectives import OBJECTIVES
from fedray.config.load import register_semantic_check
from fedray.config.schema import Scenario, SourceConfig
from fedray.data.modality import MODALITY_SCENARIOS
from fedray.data.partition import FEDMLLM_PARTITIONERS, PARTITIONERS
from fedray.data.sources import DATA_SOURCES
from fedray.models import MODEL_BUILDERS
from fedray.strategies import param_problems


@register_semantic_check
def check_plugin_names(scenario: Scenario) -> list[str]:
    problems = []
    partitioners = FEDMLLM_PARTITIONERS if scenario.partition.mode == "fedmllm" else PARTITIONERS
    named = [("data.source", DATA_SOURCES, scenario.data.source),
             ("partition.name", partitioners, scenario.partition.name),
             ("modality.name", MODALITY_SCENARIOS, scenario.modality.name),
             ("objective.name", OBJECTIVES, scenario.objective.name),
             ("model.name", MODEL_BUILDERS, scenario.model.name)]
    named += [(f"data.{where}.source", DATA_SOURCES, src.source) for where, src in _further_sources(scenario)]
    for path, registry, name in named:
        if name not in registry:
            problems.append(f"{path}: {registry.unknown_message(name)}")
    problems += [f"strategy: {p}" for p in param_problems(scenario.strategy.name,
                                                          dict(scenario.strategy.options))]
    if scenario.objective.name in OBJECTIVES:
        known = set(OBJECTIVES.get(scenario.objective.name).__dataclass_fields__)
        problems += [f"objective: {scenario.objective.name!r} has no parameter {key!r}; it accepts: "
                     f"{', '.join(sorted(known)) or 'none'}" for key in scenario.objective.options
                     if key not in known]
    return problems


@register_semantic_check
def check_paths(scenario: Scenario) -> list[str]:
    problems = []
    paths = [("data.root", scenario.data.root), ("model.path", scenario.model.path)]
    paths += [(f"data.{where}.root", src.root) for where, src in _further_sources(scenario)]
    for path, value in paths:
        if value and not Path(value).expanduser().exists():
            problems.append(f"{path}: {value!r} does not exist; fix the path (or the environment "
                            f"variable it comes from)")
    if scenario.model.name == "hf" and not scenario.model.path:
        problems.append("model.path: model.name=hf needs the directory of a saved Hugging Face model")
    return problems


@register_semantic_check
def check_heterogeneity(scenario: Scenario) -> list[str]:
    problems = []
    p, m = scenario.partition, scenario.modality
    if p.secondary_clients and scenario.data.secondary is None:
        problems.append(f"partition.secondary_clients={p.secondary_clients} needs data.secondary "
                        "(the source of the second task)")
    if p.secondary_clients >= p.num_clients:
        problems.append(f"partition.secondary_clients ({p.secondary_clients}) must be below "
                        f"partition.num_clients ({p.num_clients}) so some clients do the main task")
    if m.name == "cross_modal" and m.image_clients > p.num_clients:
        problems.append(f"modality.image_clients ({m.image_clients}) exceeds partition.num_clients "
                        f"({p.num_clients})")
    return problems


def _further_sources(scenario: Scenario) -> list[tuple[str, SourceConfig]]:
    further = [("secondary", scenario.data.secondary)] if scenario.data.secondary else []
    return further + [(f"eval_sources[{i}]", src) for i, src in enumerate(scenario.data.eval_sources)]
