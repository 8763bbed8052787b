"""Sweep definitions: ``tune_spaces/*.yaml`` → a validated :class:`TuneSpace`.

A sweep is one or more base scenarios (a list is a grid axis), overrides applied to every trial, and a
search space over dotted scenario fields::

    scenario: ../scenarios/mini.yaml          # relative to this file; or a list of files
    overrides: {federation.rounds: 6}
    space:
      train.lr: {loguniform: [1.0e-4, 1.0e-2]}
      strategy.name: {grid: [fedavg, fedadam]}   # a bare list is a grid too
    metric: val_accuracy                         # val_<metric> or test_<metric> (see trainable.py)
    scheduler: {name: asha, grace_period: 2}
    search: {name: random}
    num_samples: 8

Validation works like the scenario loader's: every problem is collected, each with its field path. On
top of the schema, every space key must name a real scenario field (unknown ones are listed with close
matches), and the values a dimension can take are type-checked by building real scenarios from them:
every grid point (up to :data:`MAX_CHECKED_POINTS`), and each value or range endpoint of the others.
A dimension's value *replaces* the field at its path. Paths are read as the scenario loader reads them
(:mod:`fedray.config.paths`): a path inside a plug-in section that is not a declared field
(``strategy.eta``) means that plug-in's option (``strategy.options.eta``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Optional

from fedray.config.load import build_dataclass, load_scenario, scenario_from_dict, scenario_to_dict
from fedray.config.paths import (
    deep_merge,
    flatten_fields,
    get_path,
    normalize_paths,
    parse_overrides,
    resolve_field_path,
    set_paths,
)
from fedray.config.safety import name_problems
from fedray.config.schema import Scenario, spec
from fedray.config.yamlio import read_yaml_file
from fedray.errors import ConfigError, FedRayError
from fedray.tune.loggers import logger_problems

DIMENSION_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
MAX_CHECKED_POINTS = 256  # grid points whose scenarios are all built at load time


def _frozen_dict() -> Mapping[str, Any]:
    return {}


@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
    """Trial scheduler: ``asha`` stops poor trials at rungs of ``server_round``; ``none`` runs all."""

    name: Literal["asha", "none"] = spec("asha")
    max_t: Optional[int] = spec(None, ge=1, help="last rung, in rounds (None: the most rounds of any trial)")
    grace_period: int = spec(1, ge=1, help="rounds every trial runs before it can be stopped")
    reduction_factor: float = spec(2.0, gt=1.0, help="keep the top 1/reduction_factor at each rung")
    brackets: int = spec(1, ge=1)

    def problems(self) -> list[str]:
        if self.max_t is not None and self.grace_period > self.max_t:
            return [f"scheduler.grace_period ({self.grace_period}) exceeds scheduler.max_t ({self.max_t})"]
        return []


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """How points are drawn: ``random`` (grid dimensions crossed with random draws), ``grid`` (every
    dimension a grid), ``optuna`` (TPE; needs the optuna package)."""

    name: Literal["random", "grid", "optuna"] = spec("random")
    seed: Optional[int] = spec(0, ge=0, help="seed of the random draws (None: not reproducible)")


@dataclasses.dataclass(frozen=True)
class PlacementConfig:
    """What each trial reserves besides its client actors (one bundle per actor, from the scenario)."""

    driver_cpus: float = spec(0.1, ge=0.0, help="CPU of the trial's driver bundle (round loop, data, "
                                                "aggregator); 0: the driver takes no bundle of its own")
    strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = spec(
        "PACK", help="placement-group strategy of each trial's bundles")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A sweep file as written (see the module docstring)."""

    name: str = spec("sweep", help="experiment name: the sweep directory under --storage")
    description: str = spec("")
    scenario: tuple[str, ...] = spec((), help="base scenario file(s), relative to the sweep file")
    overrides: Mapping[str, Any] = spec(default_factory=_frozen_dict,
                                        help="dotted scenario fields set in every trial")
    space: Mapping[str, Any] = spec(default_factory=_frozen_dict,
                                    help="dotted scenario field → {grid|choice|uniform|loguniform|randint}")
    metric: str = spec("val_accuracy", help="val_<metric>, test_<metric> or train_loss")
    mode: Literal["max", "min"] = spec("max")
    scheduler: SchedulerConfig = spec(default_factory=SchedulerConfig)
    search: SearchConfig = spec(default_factory=SearchConfig)
    num_samples: int = spec(1, ge=1, help="random draws (random/optuna) or grid repeats (grid)")
    max_concurrent_trials: Optional[int] = spec(None, ge=1, help="None: as many as resources allow")
    placement: PlacementConfig = spec(default_factory=PlacementConfig)
    loggers: Mapping[str, Any] = spec(default_factory=_frozen_dict,
                                      help="extra experiment loggers by name → options, e.g. {mlflow: {}} "
                                           "(TensorBoard is always on)")

    def problems(self) -> list[str]:
        out = logger_problems(self.loggers)
        if not self.scenario:
            out.append("scenario: give a base scenario file (or a list of them)")
        if not (self.metric.startswith(("val_", "test_")) or self.metric == "train_loss"):
            out.append(f"metric: got {self.metric!r}, expected val_<metric> (validation split), "
                       "test_<metric> or train_loss, e.g. val_accuracy")
        return out


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched field: ``kind`` and its ``values`` (the list, or ``(low, high)`` for ranges;
    ``randint`` includes ``high``)."""

    path: str
    kind: Literal["grid", "choice", "uniform", "loguniform", "randint"]
    values: tuple[Any, ...]

    @property
    def probes(self) -> tuple[Any, ...]:
        """The values whose scenarios are built at load time: every listed value, or both endpoints
        (as floats for the continuous kinds, which is what Tune samples)."""
        if self.kind in ("uniform", "loguniform"):
            return tuple(float(v) for v in self.values)
        return self.values

    def to_tune(self) -> Any:
        """The Ray Tune sampler for this dimension."""
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        if self.kind == "choice":
            return tune.choice(list(self.values))
        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        return tune.randint(self.values[0], self.values[1] + 1)  # Tune's upper bound is exclusive


@dataclasses.dataclass(frozen=True)
class TuneSpace:
    """A validated sweep: its config, base scenarios (resolved, as plain dicts) and dimensions."""

    config: SweepConfig
    source: str
    bases: Mapping[str, Mapping[str, Any]]  # scenario label → scenario_to_dict(base + overrides)
    dimensions: tuple[Dimension, ...]

    @property
    def name(self) -> str:
        return self.config.name

    def param_space(self) -> dict[str, Any]:
        """Tune's ``param_space``: ``scenario`` (a label, or a grid/choice of labels) plus one key per
        dimension, named by its dotted field path."""
        labels = list(self.bases)
        if len(labels) == 1:
            scenario: Any = labels[0]
        else:
            kind = "choice" if self.config.search.name == "optuna" else "grid"
            scenario = Dimension("scenario", kind, tuple(labels)).to_tune()
        return {"scenario": scenario, **{d.path: d.to_tune() for d in self.dimensions}}

    def expected_trials(self) -> int:
        """How many trials the sweep makes when it runs to the end."""
        if self.config.search.name == "optuna":
            return self.config.num_samples
        grid = math.prod(len(d.values) for d in self.dimensions if d.kind == "grid")
        return self.config.num_samples * grid * len(self.bases)

    def trial_scenario(self, config: Mapping[str, Any]) -> Scenario:
        """The scenario of one trial: its base with the trial's values put in (raises ConfigError)."""
        raw = self.bases[config["scenario"]]
        values = {d.path: config[d.path] for d in self.dimensions if d.path in config}
        return scenario_from_dict(set_paths(raw, values), source=f"trial {config_label(config)}")

    def max_rounds(self) -> int:
        """The most rounds any trial can run (ASHA's default ``max_t``)."""
        rounds = [int(get_path(b, "federation.rounds")) for b in self.bases.values()]
        for d in self.dimensions:
            if d.path == "federation.rounds":
                rounds += [int(v) for v in d.values if isinstance(v, (int, float))]
        return max(rounds)


def config_label(config: Mapping[str, Any]) -> str:
    """A short ``key=value`` rendering of a trial config, for messages."""
    return ", ".join(f"{k}={v}" for k, v in config.items())


# -- loading ---------------------------------------------------------------------------------------

def load_space(path: str | Path, overrides: Sequence[str] = ()) -> TuneSpace:
    """Read a sweep file, apply ``a.b=c`` overrides to it, validate it; raise ConfigError with every
    problem found."""
    import fedray.checks  # noqa: F401  (registry-aware scenario checks)

    path = Path(path)
    raw = read_yaml_file(path, "sweep file", "tune_spaces")
    return space_from_dict(raw, overrides, base_dir=path.parent, source=str(path))


def space_from_dict(raw: Any, overrides: Sequence[str] = (), base_dir: str | Path = ".",
                    source: str | None = None) -> TuneSpace:
    """Validate a raw sweep mapping; relative scenario paths are taken from ``base_dir``."""
    if isinstance(raw, Mapping) and overrides:
        raw = deep_merge(raw, parse_overrides(overrides))
    config, problems = build_dataclass(SweepConfig, raw)
    # Schema problems do not stop the rest: the space, overrides and scenarios are checked from the raw
    # mapping too, so one error lists everything.
    given = raw if isinstance(raw, Mapping) else {}
    dims, dim_problems = _dimensions(_mapping(given.get("space")))
    fixed, fixed_problems = normalize_paths(_mapping(given.get("overrides")), "overrides")
    problems += dim_problems + fixed_problems
    if config is not None:
        problems += _search_problems(config, dims) + name_problems(config.name)  # the sweep's directory
    files = config.scenario if config is not None else _strings(given.get("scenario"))
    bases, base_problems = _bases(files, Path(base_dir), fixed)
    problems += base_problems
    if not problems:
        problems += _probe(bases, dims)
    if problems or config is None:
        raise ConfigError(problems, source=source)
    return TuneSpace(config=config, source=source or "", bases=bases, dimensions=tuple(dims))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}  # anything else is a schema problem already


def _strings(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(v for v in items if isinstance(v, str))


def _is_dimension(value: Any) -> bool:
    return not isinstance(value, Mapping) or (bool(value) and set(map(str, value)) <= set(DIMENSION_KINDS))


def _dimensions(space: Mapping[str, Any]) -> tuple[list[Dimension], list[str]]:
    dims: list[Dimension] = []
    problems: list[str] = []
    for key, value in flatten_fields(space, is_leaf=_is_dimension):
        where = f"space.{key}"
        normalized, problem = resolve_field_path(key)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        dim, dim_problems = _dimension(normalized, value, where)
        problems += dim_problems
        if dim is not None:
            dims.append(dim)
    seen = [d.path for d in dims]
    problems += [f"space: {p} is given twice (e.g. as strategy.eta and strategy.options.eta)"
                 for p in sorted({p for p in seen if seen.count(p) > 1})]
    return dims, problems


def _dimension(path: str, value: Any, where: str) -> tuple[Dimension | None, list[str]]:
    if isinstance(value, list):
        value = {"grid": value}  # a bare list is a grid
    kinds = f"one of {{{' | '.join(DIMENSION_KINDS)}: ...}}"
    if not isinstance(value, Mapping) or len(value) != 1:
        return None, [f"{where}: got {_plain_repr(value)}, expected {kinds}, "
                      "e.g. {loguniform: [1.0e-4, 1.0e-2]} or {grid: [fedavg, fedadam]}"]
    (kind, args), = value.items()
    if kind not in DIMENSION_KINDS:
        return None, [f"{where}: got {_plain_repr(value)}, expected {kinds}"]
    if not isinstance(args, list) or not args:
        return None, [f"{where}.{kind}: got {args!r}, expected a non-empty list"]
    if kind in ("grid", "choice"):
        return Dimension(path, kind, tuple(args)), []
    numeric = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if len(args) != 2 or not numeric:
        return None, [f"{where}.{kind}: got {args!r}, expected [low, high] (two numbers)"]
    low, high = args
    problems = []
    if not low < high:
        problems.append(f"{where}.{kind}: low ({low}) must be below high ({high})")
    if kind == "loguniform" and low <= 0:
        problems.append(f"{where}.loguniform: low ({low}) must be above 0")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        problems.append(f"{where}.randint: got {args!r}, expected two integers (high included)")
    return (None, problems) if problems else (Dimension(path, kind, (low, high)), [])


def _plain_repr(value: Any) -> str:
    return repr(dict(value)) if isinstance(value, Mapping) else repr(value)


def _search_problems(config: SweepConfig, dims: list[Dimension]) -> list[str]:
    name = config.search.name
    if name == "grid":
        return [f"space.{d.path}: search.name=grid needs every dimension to be a grid, this one is "
                f"{d.kind}; use search.name=random" for d in dims if d.kind != "grid"]
    if name == "optuna":
        if importlib.util.find_spec("optuna") is None:
            return ["search.name: optuna needs the optuna package, which is not installed: "
                    "`pip install optuna`, or use search.name=random"]
        return [f"space.{d.path}: optuna takes no grid dimensions; write it as {{choice: [...]}}"
                for d in dims if d.kind == "grid"]
    return []


def _bases(files: Sequence[str], base_dir: Path, fixed: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Label → base scenario (file, then the sweep's overrides) as a plain dict."""
    bases: dict[str, dict] = {}
    problems: list[str] = []
    for i, name in enumerate(files):
        path = Path(name).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            scenario = load_scenario(path)
            scenario = scenario_from_dict(set_paths(scenario_to_dict(scenario), fixed))
        except ConfigError as err:
            problems += [f"scenario[{i}] ({path}): {p}" for p in err.problems]
            continue
        label = scenario.name if scenario.name not in bases else f"{scenario.name}-{i}"
        bases[label] = scenario_to_dict(scenario)
    return bases, problems


def _probe(bases: Mapping[str, dict], dims: list[Dimension]) -> list[str]:
    """Build the scenarios a sweep can produce: every grid point (when few) and every listed value or
    range endpoint of the other dimensions, with the rest at their first value."""
    first = {d.path: d.values[0] for d in dims}
    grids = [d for d in dims if d.kind == "grid"]
    points = [dict(zip([d.path for d in grids], combo))
              for combo in itertools.product(*(d.values for d in grids))]
    probes = [{**first, **p} for p in points[:MAX_CHECKED_POINTS]]
    probes += [{**first, d.path: v} for d in dims if d.kind != "grid" for v in d.probes]
    problems: list[str] = []
    for label, raw in bases.items():
        for values in probes:
            try:
                scenario_from_dict(set_paths(raw, values))
            except (ConfigError, FedRayError) as err:
                where = ", ".join(f"{k}={v!r}" for k, v in values.items())
                details = getattr(err, "problems", [str(err)])
                problems += [f"space: scenario {label!r} with {where}: {p}" for p in details]
    return list(dict.fromkeys(problems))
