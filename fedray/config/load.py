"""Scenario loading: YAML file → ``a.b=c`` overrides → ``${ENV}`` expansion → validated :class:`Scenario`.

Every step collects problems instead of raising at the first, so one :class:`ConfigError` lists all
of them, each with its dotted field path. Validation is generic: it is driven by the schema's type
hints and the bounds in each field's :func:`~fedray.config.schema.spec` metadata. YAML reading and
writing (:mod:`fedray.config.yamlio`) and dotted paths, merges and overrides (:mod:`fedray.config.paths`)
are shared with the sweep loader.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import operator
import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from fedray.config.paths import collect_overrides, deep_merge, extra_field, join_path
from fedray.config.safety import ENV_ALLOWED, ENV_PREFIX, env_allowed, scenario_reach_problems
from fedray.config.schema import Scenario
from fedray.config.yamlio import dump_yaml, parse_yaml, read_yaml_file
from fedray.errors import ConfigError

SemanticCheck = Callable[[Scenario], list[str]]

# Checks that need the plug-in registries (is strategy.name registered? ...). Plug-in packages append
# here through register_semantic_check, so this module never imports them.
SEMANTIC_CHECKS: list[SemanticCheck] = []

_INVALID = object()  # a value of the wrong type; its problem has already been recorded
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BOUNDS = (("ge", ">=", operator.ge), ("gt", ">", operator.gt),
           ("le", "<=", operator.le), ("lt", "<", operator.lt))


def register_semantic_check(fn: SemanticCheck) -> SemanticCheck:
    """Add a check run on every successfully built scenario; usable as a decorator.

    A check returns problem messages (empty when fine); they join the loader's single ConfigError.
    """
    if fn not in SEMANTIC_CHECKS:
        SEMANTIC_CHECKS.append(fn)
    return fn


register_semantic_check(scenario_reach_problems)  # run name, output root, cluster address


def expand_env(obj: Any, path: str = "",
               allowed: Callable[[str], bool] | None = None) -> tuple[Any, list[str]]:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of ``obj``; return (result, problems).

    A string that is exactly one reference is re-read as YAML so that ``${ROUNDS}`` can be a number.
    With ``allowed``, a variable it refuses is a problem and is not read (scenarios allow ``FEDRAY_*``
    and a few locations, so a scenario cannot copy an arbitrary variable into config.yaml).
    """
    if isinstance(obj, Mapping):
        pairs = [(k, expand_env(v, join_path(path, str(k)), allowed)) for k, v in obj.items()]
        return {k: v for k, (v, _) in pairs}, [p for _, (_, probs) in pairs for p in probs]
    if isinstance(obj, (list, tuple)):
        pairs = [expand_env(v, f"{path}[{i}]", allowed) for i, v in enumerate(obj)]
        return [v for v, _ in pairs], [p for _, probs in pairs for p in probs]
    if not isinstance(obj, str) or "${" not in obj:
        return obj, []
    problems: list[str] = []

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if allowed is not None and not allowed(name):
            problems.append(f"{path or 'value'}: ${{{name}}} is not expanded: a scenario reads only "
                            f"{ENV_PREFIX}* variables and {', '.join(sorted(ENV_ALLOWED))}; export "
                            f"{ENV_PREFIX}{name}=... and write ${{{ENV_PREFIX}{name}}}")
            return match.group(0)  # left as written, so no second problem follows from an empty value
        value = os.environ.get(name)
        if value:  # like the shell's ${VAR:-x}: an empty variable also takes the default
            return value
        if default is not None:
            return default
        if value is None:
            problems.append(f"{path or 'value'}: environment variable {name} is not set; export it "
                            f"or write ${{{name}:-/some/default}}")
        return ""

    expanded = _ENV_REF.sub(substitute, obj)
    if _ENV_REF.fullmatch(obj) and expanded and not problems:
        expanded = _reparse_scalar(expanded)
    return expanded, problems


def _reparse_scalar(text: str) -> Any:
    try:
        value = parse_yaml(text)
    except yaml.YAMLError:
        return text
    # Only scalars: a path such as "a: b" must not turn into a mapping.
    return value if isinstance(value, (bool, int, float, str)) else text


def build_dataclass(cls: type, raw: Any, path: str = "") -> tuple[Any | None, list[str]]:
    """Build frozen dataclass ``cls`` from a nested mapping; return (instance or None, every problem).

    The instance is None whenever there is any problem, so a caller cannot use a half-valid config.
    """
    instance, problems = _build(cls, raw, path)
    if problems or instance is _INVALID:
        return None, problems
    return instance, []


def _build(cls: type, raw: Any, path: str, lenient: bool = False) -> tuple[Any, list[str]]:
    """Like build_dataclass, but returns the instance whenever all its fields are well typed and in
    range (unknown keys and cross-field problems do not block), so enclosing sections can still run
    their own ``problems()`` and the user sees more of their mistakes at once.

    ``lenient=True`` builds an instance whatever the problems, with defaults in place of bad values;
    it lets the registry-aware checks run beside schema problems so that one error lists both."""
    if raw is None:
        raw = {}  # a YAML section whose keys are all commented out
    if not isinstance(raw, Mapping):
        names = ", ".join(f.name for f in dataclasses.fields(cls))
        return _INVALID, [f"{path or 'top level'}: got {_show(raw)}, expected a mapping of fields ({names})"]
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra = extra_field(cls)
    kwargs: dict[str, Any] = {}
    undeclared: dict[str, Any] = {}
    problems: list[str] = []
    blocked = False
    for key, value in raw.items():
        name = str(key)
        if name not in fields:
            if extra:
                undeclared[name] = value
            else:
                problems.append(_unknown_key(name, list(fields), path))
            continue
        value, probs = _convert(hints[name], value, join_path(path, name), lenient=lenient)
        out_of_range = _range_problems(value, fields[name].metadata, join_path(path, name))
        if lenient and (value is _INVALID or out_of_range):
            continue  # keep the default

        # Wrong types and out-of-range values block this section's problems(), which may divide by
        # them; a nested section's unknown keys (it still built) do not.
        blocked |= value is _INVALID or bool(out_of_range)
        problems += probs + out_of_range
        kwargs[name] = value
    if extra and (undeclared or extra in kwargs):
        problems += _merge_extras(kwargs, extra, undeclared, path)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:  # a required field absent (or, leniently, dropped for a bad value): nothing to build
        given = {str(k) for k in raw}
        problems += [f"{join_path(path, n)}: required; give it a value" for n in missing if n not in given]
        return _INVALID, problems
    if blocked and not lenient:
        return _INVALID, problems
    if lenient and kwargs.get(extra) is _INVALID:
        kwargs.pop(extra)
    instance = cls(**kwargs)
    if hasattr(instance, "problems"):
        problems += instance.problems()
    return instance, problems


def _merge_extras(kwargs: dict, extra: str, undeclared: dict, path: str) -> list[str]:
    """Put keys a section does not declare into its ``extra`` field, beside any given explicitly."""
    explicit = kwargs.get(extra, {})
    if explicit is _INVALID:
        return []
    clash = sorted(set(explicit) & set(undeclared))
    kwargs[extra] = {**explicit, **undeclared}
    return [f"{join_path(path, k)}: given both inline and under {join_path(path, extra)}; keep one"
            for k in clash]


def _convert(tp: Any, value: Any, path: str, expected: str | None = None,
             lenient: bool = False) -> tuple[Any, list[str]]:
    """Convert ``value`` to type ``tp``: (converted, problems); converted is _INVALID on a type error."""
    origin, args = get_origin(tp), get_args(tp)
    expected = expected or describe_type(tp)
    if tp is Any:
        return value, []
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, lenient)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None, []
        arms = [a for a in args if a is not type(None)]
        if len(arms) != 1:
            raise TypeError(f"schema type {tp} at {path} is not supported (only Optional[X])")
        return _convert(arms[0], value, path, expected, lenient)
    if origin is tuple:
        return _convert_tuple(args, value, path, expected)
    if origin is Literal:
        converted = value if isinstance(value, str) and value in args else _INVALID
    elif origin in (Mapping, dict) or tp in (Mapping, dict):
        converted = dict(value) if isinstance(value, Mapping) else _INVALID
    else:
        converted = _to_scalar(tp, value)
    if converted is not _INVALID:
        return converted, []
    close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1) if origin is Literal else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return _INVALID, [f"{path}: got {_show(value)}, expected {expected}{hint}"]


def _convert_tuple(args: tuple, value: Any, path: str, expected: str) -> tuple[Any, list[str]]:
    if len(args) != 2 or args[1] is not Ellipsis:
        raise TypeError(f"schema type tuple{list(args)} at {path} is not supported (only tuple[X, ...])")
    if isinstance(value, str):
        value = [value]  # `modules_to_save: lm_head` means a one-element list
    if not isinstance(value, (list, tuple)):
        return _INVALID, [f"{path}: got {_show(value)}, expected {expected}"]
    items = [_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    problems = [p for _, probs in items for p in probs]
    return (_INVALID if problems else tuple(v for v, _ in items)), problems


def _to_scalar(tp: type, value: Any) -> Any:
    """str/int/float/bool conversion; numeric strings count as numbers (env values, quoted YAML)."""
    if tp is bool or tp is str:
        return value if type(value) is tp else _INVALID
    if tp not in (int, float):
        raise TypeError(f"schema type {tp!r} is not supported")
    # type() rather than isinstance(): a bool is an int, but `lr: true` is a mistake.
    if not (isinstance(value, str) or type(value) is int or type(value) is tp):
        return _INVALID
    try:
        return tp(value)
    except ValueError:
        return _INVALID


def _range_problems(value: Any, metadata: Mapping, path: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return []
    if isinstance(value, float) and not math.isfinite(value):  # no setting can mean ±inf or NaN
        return [f"{path}: got {value!r}, must be a finite number"]
    return [f"{path}: got {value!r}, must be {symbol} {bound_text(metadata[key])}"
            for key, symbol, ok in _BOUNDS
            if metadata.get(key) is not None and not ok(value, metadata[key])]


def bound_text(bound: float) -> str:
    """A bound as people write it: ``0.5``, ``1024``, ``1,000,000`` (not ``1e+06``)."""
    return f"{int(bound):,}" if float(bound).is_integer() and abs(bound) >= 10_000 else f"{bound:g}"


def _unknown_key(name: str, known: list[str], path: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    where = f"in {path}" if path else "at the top level"
    return f"{join_path(path, name)}: unknown key {where}; {hint}known keys: {', '.join(known)}"


def describe_type(tp: Any) -> str:
    """What a type accepts, in words (error messages and ``fedray config show``)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args if a is not type(None)) + " or null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"a list of {describe_type(args[0]).removeprefix('a ')}s (or a single one)"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, "a mapping")


def _show(value: Any) -> str:
    kind = {type(None): "null", dict: "a mapping", list: "a list"}.get(type(value), type(value).__name__)
    return f"{value!r} ({kind})" if not isinstance(value, (dict, list)) else kind


def scenario_from_dict(raw: Mapping, overrides: Sequence[str] = (), source: str | None = None) -> Scenario:
    """Validate a raw scenario mapping (plus overrides) into a :class:`Scenario` or raise ConfigError."""
    tree, problems = collect_overrides(overrides)
    merged = deep_merge(raw, tree) if isinstance(raw, Mapping) else raw  # non-mapping: reported below
    expanded, env_problems = expand_env(merged, allowed=env_allowed)
    scenario, build_problems = build_dataclass(Scenario, expanded)
    problems += env_problems + build_problems
    # With schema problems, the registry-aware checks see a best-effort scenario (defaults in place of
    # bad values), so a wrong strategy name is reported together with a wrong type elsewhere.
    checked = scenario if scenario is not None else _lenient_scenario(expanded)
    if checked is not None:
        for check in SEMANTIC_CHECKS:
            problems += check(checked)
    if problems or scenario is None:
        raise ConfigError(problems, source=source)
    return scenario


def _lenient_scenario(raw: Any) -> Scenario | None:
    if not isinstance(raw, Mapping):
        return None
    instance, _ = _build(Scenario, raw, "", lenient=True)
    return None if instance is _INVALID else instance


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read a scenario YAML file, apply ``a.b=c`` overrides and validate it; raise ConfigError if bad."""
    raw = read_yaml_file(path, "scenario file", "scenarios")  # an empty file means "all defaults"
    if not isinstance(raw, Mapping):
        message = f"top level: got {_show(raw)}, expected a mapping of sections (name, data, train, ...)"
        raise ConfigError([message], source=str(path))
    return scenario_from_dict(raw, overrides, source=str(path))


def scenario_to_dict(scenario: Scenario) -> dict:
    """A plain YAML-safe dict of a Scenario: sections → dicts, tuples → lists, mappings → dicts.

    Plug-in options stay under their ``options`` key (which the loader accepts as well as inline keys),
    so an option whose name equals a declared field cannot be mistaken for that field.
    """
    return _plain(scenario)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def dump_scenario(scenario: Scenario, path: str | Path) -> None:
    """Write ``scenario`` as YAML that :func:`load_scenario` reads back to an equal Scenario."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dump_yaml(scenario_to_dict(scenario))
    path.write_text(f"# resolved scenario {scenario.name!r}; reload with fedray.config.load_scenario\n{text}",
                    encoding="utf-8")
