"""Scenario checks that need the plug-in registries (names, plug-in parameters, paths).

The config loader knows only the schema; importing this module registers these checks with it, so a
bad strategy name, an unknown strategy parameter, an out-of-range partitioner parameter or a missing
data path shows up in the same single error as every schema problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedray.client.deepspeed import gradient_edit_problem
from fedray.client.objectives import LocalObjective, parse_objective
from fedray.client.trainers import TRAINERS
from fedray.config.load import register_semantic_check
from fedray.config.schema import Scenario, SourceConfig
from fedray.data.modality import MODALITY_SCENARIOS
from fedray.data.partition import PARTITIONERS_BY_MODE
from fedray.data.sources import DATA_SOURCES, needs_root
from fedray.engine.modes import RUN_MODES
from fedray.errors import FedRayError
from fedray.models import MODEL_BUILDERS
from fedray.registry import Registry
from fedray.strategies import STRATEGIES


@register_semantic_check
def check_plugin_names(scenario: Scenario) -> list[str]:
    problems = []
    partitioners = PARTITIONERS_BY_MODE[scenario.partition.mode]
    named = [("mode", RUN_MODES, scenario.mode),
             ("data.source", DATA_SOURCES, scenario.data.source),
             ("partition.name", partitioners, scenario.partition.name),
             ("modality.name", MODALITY_SCENARIOS, scenario.modality.name),
             ("model.name", MODEL_BUILDERS, scenario.model.name)]
    named += [(f"data.{where}.source", DATA_SOURCES, src.source) for where, src in _further_sources(scenario)]
    for path, registry, name in named:
        if name not in registry:
            problems.append(f"{path}: {registry.unknown_message(name)}")
    return problems + _paired_objective(scenario)[1]


@register_semantic_check
def check_plugin_params(scenario: Scenario) -> list[str]:
    """The inline parameters of the data sources, partitioner, modality scenario and train engine, each
    built into its entry's parameter dataclass (types, ranges, cross-field rules) under its own path."""
    s = scenario
    sections: list[tuple[str, Registry, str, Mapping[str, Any]]] = [
        ("data", DATA_SOURCES, s.data.source, s.data.options),
        ("partition", PARTITIONERS_BY_MODE[s.partition.mode], s.partition.name, s.partition.options),
        ("modality", MODALITY_SCENARIOS, s.modality.name, s.modality.options),
        ("train.engine", TRAINERS, s.train.engine.name, s.train.engine.options),
    ]
    sections += [(f"data.{where}", DATA_SOURCES, src.source, src.options)
                 for where, src in _further_sources(s)]
    problems = []
    for path, registry, name, options in sections:
        problems += _options_problems(registry, name, options, path)
    return problems + _source_root_problems(scenario)


def _options_problems(registry: Registry, name: str, options: Mapping[str, Any], path: str) -> list[str]:
    """Every problem with ``options`` as entry ``name``'s parameters; an unknown name is left to
    :func:`check_plugin_names`."""
    if name not in registry:
        return []
    problems = []
    if "root" in options and registry is DATA_SOURCES:
        problems.append(f"{path}.options.root: root is not an option; set {path}.root for source {name!r}")
        options = {k: v for k, v in options.items() if k != "root"}
    return problems + registry.parse(name, options, path)[1]


def _source_root_problems(scenario: Scenario) -> list[str]:
    d = scenario.data
    sources = [("data", d.source, d.root, d.options)]
    sources += [(f"data.{where}", s.source, s.root, s.options) for where, s in _further_sources(scenario)]
    return [f"{path}.root: data source {name!r} reads files; set {path}.root to its directory"
            for path, name, root, opts in sources if name in DATA_SOURCES and needs_root(name, opts)
            and not root]


@register_semantic_check
def check_paths(scenario: Scenario) -> list[str]:
    problems = []
    hf_model = scenario.model.name == "hf"
    paths = [("data.root", scenario.data.root)] + ([] if hf_model else [("model.path", scenario.model.path)])
    paths += [(f"data.{where}.root", src.root) for where, src in _further_sources(scenario)]
    for path, value in paths:
        if value and not _exists(value):
            problems.append(f"{path}: {value!r} does not exist; fix the path (or the environment "
                            f"variable it comes from)")
    if hf_model and not scenario.model.path:
        problems.append("model.path: model.name=hf needs the directory of a saved Hugging Face model")
    elif hf_model and not Path(scenario.model.path).expanduser().is_dir():
        from fedray.models.hub_cache import model_path_problem  # a directory or an id in the hub cache

        problems += [f"model.path: {p}" for p in [model_path_problem(scenario.model.path)] if p]
    return problems


def _exists(value: str) -> bool:
    try:  # a name over the file system's limit raises instead of answering
        return Path(value).expanduser().exists()
    except (OSError, ValueError):
        return False


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
    image_clients = getattr(_built(MODALITY_SCENARIOS, m.name, m.options), "image_clients", 0)
    if image_clients > p.num_clients:
        problems.append(f"modality.image_clients ({image_clients}) exceeds partition.num_clients "
                        f"({p.num_clients})")
    return problems


@register_semantic_check
def check_train_engine(scenario: Scenario) -> list[str]:
    """DeepSpeed settings, group clients and the objectives each engine can run."""
    engine, res = scenario.train.engine, scenario.resources
    problems = []
    if engine.name not in TRAINERS:
        problems.append(f"train.engine.name: {TRAINERS.unknown_message(engine.name)}")
    if res.actors_per_client > 1:
        if engine.name != "deepspeed":
            problems.append(f"resources.actors_per_client={res.actors_per_client} trains each client on a "
                            f"DeepSpeed data-parallel group, but train.engine.name is {engine.name!r}; set "
                            "train.engine.name: deepspeed (or resources.actors_per_client: 1)")
        if scenario.train.batch_size < res.actors_per_client:
            problems.append(f"train.batch_size ({scenario.train.batch_size}) is split over the "
                            f"{res.actors_per_client} actors of a group; raise it to at least "
                            f"resources.actors_per_client")
        if 0 < res.gpus_per_actor < 1 or res.gpus_per_actor % 1:
            problems.append(f"resources.gpus_per_actor={res.gpus_per_actor} with actors_per_client="
                            f"{res.actors_per_client}: two ranks of one group could share a GPU, which "
                            "NCCL refuses; give group actors whole GPUs (gpus_per_actor: 1) or none")
    deepspeed = _built(TRAINERS, engine.name, engine.options) if engine.name == "deepspeed" else None
    if deepspeed is None:  # another engine, or bad parameters (check_plugin_params says which)
        return problems
    if deepspeed.bf16 and scenario.model.dtype != "bfloat16":
        problems.append(f"train.engine.bf16 casts the actor's whole model to bfloat16 for good, but "
                        f"model.dtype is {scenario.model.dtype}; set model.dtype: bfloat16 so the base "
                        "model is loaded (and evaluated) that way from the start")
    refusal = _gradient_edit_problem(scenario, deepspeed.zero_stage)
    if refusal:
        problems.append(f"train.engine.zero_stage: with strategy {scenario.strategy.name!r}, {refusal}")
    return problems


def _gradient_edit_problem(scenario: Scenario, zero_stage: int) -> str | None:
    """The trainer's own refusal (:func:`~fedray.client.deepspeed.gradient_edit_problem`) of the client
    half the strategy pairs with the objective (SCAFFOLD's edits gradients); None when it can run or
    when the strategy or objective is itself wrong (the other checks say why)."""
    objective, _ = _paired_objective(scenario)
    return None if objective is None else gradient_edit_problem(zero_stage, objective)


def _paired_objective(scenario: Scenario) -> tuple[LocalObjective | None, list[str]]:
    """Round one's client objective as the strategy pairs it with the scenario's, else every problem.

    The strategy's and the objective's parameters are built by their registries (paths ``strategy`` and
    ``objective``); then the strategy is asked for round one, which is where SCAFFOLD refuses a second
    client objective.
    """
    s, o = scenario.strategy, scenario.objective
    params, problems = STRATEGIES.parse(s.name, s.options, "strategy")
    objective, objective_problems = parse_objective(o.name, o.options, "objective")
    problems += objective_problems
    if problems:
        return None, problems
    strategy = STRATEGIES.get(s.name)(params, num_clients=scenario.partition.num_clients)
    try:
        return strategy.configure_fit(1, [0], {}, objective), []
    except FedRayError as err:
        return None, [f"strategy.name: {err}"]


def _built(registry: Registry, name: str, options: Mapping[str, Any]) -> Any:
    """Entry ``name``'s parameters built from ``options``, or None if the name or a value is bad."""
    return registry.parse(name, options, "")[0] if name in registry else None


def _further_sources(scenario: Scenario) -> list[tuple[str, SourceConfig]]:
    further = [("secondary", scenario.data.secondary)] if scenario.data.secondary else []
    return further + [(f"eval_sources[{i}]", src) for i, src in enumerate(scenario.data.eval_sources)]
