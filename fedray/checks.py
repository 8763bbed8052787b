"""Scenario checks that need the plug-in registries (names, plug-in parameters, paths).

The config loader knows only the schema; importing this module registers these checks with it, so a
bad strategy name, an unknown strategy parameter or a missing data path shows up in the same single
error as every schema problem.
"""

from __future__ import annotations

from pathlib import Path

from fedray.client.engines import TRAIN_ENGINES
from fedray.client.objectives import LocalObjective, parse_objective
from fedray.config.load import register_semantic_check
from fedray.config.schema import Scenario, SourceConfig
from fedray.data.modality import MODALITY_SCENARIOS
from fedray.data.partition import FEDMLLM_PARTITIONERS, PARTITIONERS
from fedray.data.sources import DATA_SOURCES
from fedray.errors import FedRayError
from fedray.models import MODEL_BUILDERS
from fedray.strategies import STRATEGIES


@register_semantic_check
def check_plugin_names(scenario: Scenario) -> list[str]:
    problems = []
    partitioners = FEDMLLM_PARTITIONERS if scenario.partition.mode == "fedmllm" else PARTITIONERS
    named = [("data.source", DATA_SOURCES, scenario.data.source),
             ("partition.name", partitioners, scenario.partition.name),
             ("modality.name", MODALITY_SCENARIOS, scenario.modality.name),
             ("model.name", MODEL_BUILDERS, scenario.model.name)]
    named += [(f"data.{where}.source", DATA_SOURCES, src.source) for where, src in _further_sources(scenario)]
    for path, registry, name in named:
        if name not in registry:
            problems.append(f"{path}: {registry.unknown_message(name)}")
    return problems + _paired_objective(scenario)[1]


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


@register_semantic_check
def check_train_engine(scenario: Scenario) -> list[str]:
    """DeepSpeed settings, group clients and the objectives each engine can run."""
    engine, res = scenario.train.engine, scenario.resources
    problems = []
    if engine.name not in TRAIN_ENGINES:
        problems.append(f"train.engine.name: {TRAIN_ENGINES.unknown_message(engine.name)}")
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
    if engine.name != "deepspeed":
        return problems
    if engine.offload_optimizer and engine.zero_stage == 0:
        problems.append("train.engine.offload_optimizer needs ZeRO: set train.engine.zero_stage to 1, 2 or 3")
    if engine.bf16 and scenario.model.dtype != "bfloat16":
        problems.append(f"train.engine.bf16 casts the actor's whole model to bfloat16 for good, but "
                        f"model.dtype is {scenario.model.dtype}; set model.dtype: bfloat16 so the base "
                        "model is loaded (and evaluated) that way from the start")
    if engine.zero_stage >= 1 and _client_adjusts_gradients(scenario):
        problems.append(f"train.engine.zero_stage={engine.zero_stage}: strategy {scenario.strategy.name!r} "
                        "corrects each gradient after backward (SCAFFOLD), but ZeRO stages >= 1 reduce "
                        "and partition gradients inside backward, so the correction would be lost; set "
                        "train.engine.zero_stage: 0 (or train.engine.name: torch)")
    return problems


def _client_adjusts_gradients(scenario: Scenario) -> bool:
    """Whether the client half the strategy pairs with the objective edits gradients (SCAFFOLD's does)."""
    objective, _ = _paired_objective(scenario)
    return objective is not None and objective.adjusts_gradients


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


def _further_sources(scenario: Scenario) -> list[tuple[str, SourceConfig]]:
    further = [("secondary", scenario.data.secondary)] if scenario.data.secondary else []
    return further + [(f"eval_sources[{i}]", src) for i, src in enumerate(scenario.data.eval_sources)]
