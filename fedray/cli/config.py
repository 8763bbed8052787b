"""``fedray config show SCENARIO [key=value ...]`` and ``fedray config show --plugins KIND``.

The first prints the scenario as the loader resolves it (every section, defaults filled in, overrides
applied) as YAML that ``fedray run`` accepts, followed, as YAML comments, by the parameters of each
plug-in the scenario chooses: type, bounds, default, one-line help and the value this scenario gives.
Given a sweep file (``tune_spaces/*.yaml``) it prints the sweep resolved the same way, then each base
scenario as the sweep's trials start from it (as YAML comments).
The second lists every registered plug-in of a kind (or of every kind) with its parameters, so a user
can see what ``strategy.eta`` or ``modality.missing_rate`` accepts without reading the source.

Both read each plug-in's parameter dataclass from its registry (``Registry.params_class``), so a new
plug-in shows up here as soon as it is registered.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from fedray.config.load import load_scenario, scenario_to_dict
from fedray.config.params import describe_params
from fedray.config.paths import extra_field
from fedray.config.yamlio import dump_yaml
from fedray.errors import FedRayError

HELP = "show a scenario resolved with its defaults and its plug-ins' parameters, or the plug-ins of a kind"

# Plug-in kind → "module:REGISTRY". Imported only when asked for: these modules pull in torch, and
# `fedray --help` and `fedray validate` should not pay for that (fedray.config itself is light).
PLUGIN_REGISTRIES = {
    "strategy": "fedray.strategies.registry:STRATEGIES",
    "objective": "fedray.client.objectives:OBJECTIVES",
    "data_source": "fedray.data.sources:DATA_SOURCES",
    "partitioner": "fedray.data.partition:PARTITIONERS",
    "fedmllm_partitioner": "fedray.data.partition:FEDMLLM_PARTITIONERS",
    "modality": "fedray.data.modality:MODALITY_SCENARIOS",
    "prompt_style": "fedray.data.prompts:PROMPT_STYLES",
    "model_builder": "fedray.models.base:MODEL_BUILDERS",
    "train_engine": "fedray.client.trainers:TRAINERS",
}
TABLE_COLUMNS = ("parameter", "type", "bounds", "default", "help")


class ChosenPlugin(NamedTuple):
    """A plug-in a scenario picks: its kind, the field that names it (``data.source``), its name, the
    values its section gives (declared fields and plug-in options together) and the options alone."""

    kind: str
    field: str
    name: str
    values: Mapping[str, Any]
    options: Mapping[str, Any]


def add_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("scenario", nargs="?", help="scenario YAML file")
    show.add_argument("overrides", nargs="*", help="key.path=value overrides")
    show.add_argument("--plugins", metavar="KIND", choices=[*PLUGIN_REGISTRIES, "all"],
                      help=f"list every registered plug-in of KIND with its parameters: "
                           f"{', '.join(PLUGIN_REGISTRIES)} or all")


def main(args: argparse.Namespace) -> int:
    if args.plugins and args.scenario:
        raise FedRayError("fedray config show takes a scenario or --plugins KIND, not both")
    if args.plugins:
        kinds = list(PLUGIN_REGISTRIES) if args.plugins == "all" else [args.plugins]
        print("\n\n".join(list_plugins(kind) for kind in kinds))
        return 0
    if not args.scenario:
        raise FedRayError("fedray config show needs a scenario file (e.g. fedray config show "
                          "scenarios/mini.yaml) or --plugins KIND")
    import fedray.checks  # noqa: F401  (registry-aware checks, as `fedray validate` runs them)
    from fedray.cli.validate import is_sweep_file

    if is_sweep_file(args.scenario):
        from fedray.tune.space import load_space

        print(show_sweep(load_space(args.scenario, args.overrides), args.scenario, args.overrides))
        return 0
    scenario = load_scenario(args.scenario, args.overrides)  # raises ConfigError listing all problems
    print(show_scenario(scenario, args.scenario, args.overrides))
    return 0


def show_sweep(space: Any, source: str, overrides: Sequence[str] = ()) -> str:
    """A sweep file resolved: its own fields with defaults, then each base scenario as every trial
    starts from it (the sweep's ``overrides`` applied; the searched fields then vary per trial)."""
    applied = f" with {' '.join(overrides)}" if overrides else ""
    lines = [f"# sweep {space.name!r} from {source}{applied}, every field resolved "
             f"({space.expected_trials()} trials)", dump_yaml(scenario_to_dict(space.config)).rstrip()]
    searched = ", ".join(d.path for d in space.dimensions) or "none"
    for label, base in space.bases.items():
        lines += ["", f"# base scenario {label!r} with the sweep's overrides (searched per trial: "
                      f"{searched})",
                  *(f"#   {line}" for line in dump_yaml(dict(base)).rstrip().splitlines())]
    return "\n".join(lines)


def registry_of(kind: str) -> Any:
    """The registry of plug-in ``kind`` (a key of :data:`PLUGIN_REGISTRIES`), imported on first use."""
    module, _, attribute = PLUGIN_REGISTRIES[kind].partition(":")
    return getattr(importlib.import_module(module), attribute)


def show_scenario(scenario: Any, source: str, overrides: Sequence[str] = ()) -> str:
    """The resolved scenario as YAML, then its plug-ins' parameters as YAML comments."""

    applied = f" with {' '.join(overrides)}" if overrides else ""
    lines = [f"# scenario {scenario.name!r} from {source}{applied}, every field resolved",
             dump_yaml(scenario_to_dict(scenario)).rstrip(), "", "# plug-ins chosen by this scenario"]
    for plugin in chosen_plugins(scenario):
        header = f"{plugin.kind.replace('_', ' ')} {plugin.name!r} ({plugin.field})"
        body = describe_plugin(registry_of(plugin.kind), plugin.name, plugin.values, plugin.options)
        lines += ["#", f"# {header}", *(f"#   {line}" for line in body)]
    return "\n".join(lines)


def chosen_plugins(scenario: Any) -> list[ChosenPlugin]:
    """Every plug-in ``scenario`` picks by name, with the section that picks it."""
    partitioner = "fedmllm_partitioner" if scenario.partition.mode == "fedmllm" else "partitioner"
    sources = [("data", scenario.data)]
    sources += [("data.secondary", scenario.data.secondary)] if scenario.data.secondary else []
    sources += [(f"data.eval_sources[{i}]", s) for i, s in enumerate(scenario.data.eval_sources)]
    picked = [("strategy", "strategy", scenario.strategy, "name"),
              ("objective", "objective", scenario.objective, "name"),
              *(("data_source", where, src, "source") for where, src in sources),
              (partitioner, "partition", scenario.partition, "name"),
              ("modality", "modality", scenario.modality, "name"),
              ("prompt_style", "prompts", scenario.prompts, "style"),
              ("model_builder", "model", scenario.model, "name"),
              ("train_engine", "train.engine", scenario.train.engine, "name")]
    return [ChosenPlugin(kind, f"{where}.{key}", getattr(section, key), *_section_values(section))
            for kind, where, section, key in picked]


def _section_values(section: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a section's fields with its plug-in options spread among them, the options alone)."""

    values = scenario_to_dict(section)
    extra = extra_field(type(section))
    options = values.pop(extra) if extra else {}
    return {**values, **options}, options


def list_plugins(kind: str) -> str:
    """Every registered plug-in of ``kind``, each with its parameters."""
    registry = registry_of(kind)
    lines = [f"# {kind.replace('_', ' ')}: {len(registry.names())} registered"]
    for name in registry.names():
        summary = _summary(registry.get(name))
        lines += ["", f"{name}" + (f": {summary}" if summary else "")]
        lines += [f"  {line}" for line in describe_plugin(registry, name)]
    return "\n".join(lines)


def describe_plugin(registry: Any, name: str, values: Mapping[str, Any] | None = None,
                    options: Mapping[str, Any] | None = None) -> list[str]:
    """The parameters of entry ``name`` as table lines (``no parameters`` when it takes none).

    With ``values`` (what a scenario gives), a column of the values used; with ``options`` (the
    section's plug-in options), a line naming any option the parameter class does not declare.
    """
    rows = describe_params(registry.params_class(name))
    if not rows:
        lines = ["no parameters"]
    else:
        columns = TABLE_COLUMNS if values is None else ("parameter", "value", *TABLE_COLUMNS[1:])
        cells = [{**row, "parameter": row["name"], "default": format_value(row["default"]),
                  "value": format_value(values[row["name"]]) if values and row["name"] in values
                  else "(default)"} for row in rows]
        lines = format_table(cells, columns)
    declared = {row["name"] for row in rows}
    undeclared = {k: v for k, v in (options or {}).items() if k not in declared}
    if undeclared:
        lines.append("options that are not declared parameters: " +
                     ", ".join(f"{k}={format_value(v)}" for k, v in undeclared.items()))
    return lines


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """Left-aligned columns with a header line; the last column is not padded."""
    table = [list(columns)] + [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns) - 1)]
    return [("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1]).rstrip() for r in table]


def format_value(value: Any) -> str:
    """A value as it would be written in YAML (``null``, ``true``, ``[a, b]``, ``0.001``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and value and ("\n" in value or value != value.strip()):
        return json.dumps(value)  # YAML's double-quoted form keeps newlines and edge spaces visible
    return repr(value) if value == "" else str(value)


def _summary(entry: Any, limit: int = 100) -> str:
    """The first sentence of a plug-in's docstring, within ``limit`` characters (nothing for a
    dataclass's generated signature)."""
    paragraph = (getattr(entry, "__doc__", None) or "").strip().split("\n\n")[0]
    text = " ".join(paragraph.split())
    if text.startswith(f"{getattr(entry, '__name__', type(entry).__name__)}("):
        return ""
    sentence = re.split(r"(?<=\.)\s+(?=[A-Z])", text)[0]
    return sentence if len(sentence) <= limit else sentence[:limit - 1].rstrip() + "…"
