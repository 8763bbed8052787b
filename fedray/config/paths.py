"""Dotted field paths (``train.lr``), nested get/set, deep merge and ``a.b=c`` overrides.

Scenario files, command-line overrides and sweep files all name fields the same way, so they share
these functions. One rule is the schema's: a section with an ``extra`` mapping field (a plug-in section
such as ``strategy``) takes keys it does not declare as that plug-in's options, so the path
``strategy.eta`` means ``strategy.options.eta``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, Literal, NamedTuple, Union, get_args, get_origin, get_type_hints

import yaml

from fedray.config.schema import Scenario
from fedray.config.yamlio import parse_yaml, yaml_reason
from fedray.errors import ConfigError

FieldKind = Literal["section", "free", "leaf"]


# -- plain nested mappings -------------------------------------------------------------------------

def split_path(path: str) -> list[str]:
    """``"a.b.c"`` → ``["a", "b", "c"]`` (an empty part stays, for the caller to report)."""
    return path.split(".")


def join_path(*parts: str) -> str:
    """``("a", "b")`` → ``"a.b"``; empty parts are skipped, so ``join_path("", "a") == "a"``."""
    return ".".join(p for p in parts if p)


def nest(path: str, value: Any) -> dict:
    """``("a.b", 1)`` → ``{"a": {"b": 1}}``."""
    for part in reversed(split_path(path)):
        value = {part: value}
    return value


def get_path(tree: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """The value at dotted ``path`` in nested ``tree``, or ``default`` when a part is missing."""
    node: Any = tree
    for part in split_path(path):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_paths(tree: Mapping[str, Any], values: Mapping[str, Any]) -> dict:
    """A deep copy of ``tree`` with the field at each dotted path *replaced* by its value (missing
    sections on the way are created)."""
    out = _copy(tree)
    for path, value in values.items():
        node = out
        *parents, leaf = split_path(path)
        for part in parents:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, Mapping) else {}
            node = child
        node[leaf] = _copy(value)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def deep_merge(base: Mapping, over: Mapping) -> dict:
    """A new dict: ``over`` wins, except that two mappings under one key are merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# -- a.b=c overrides -------------------------------------------------------------------------------

def parse_overrides(items: Sequence[str]) -> dict:
    """Turn ``["train.lr=1e-4", "strategy.name=fedprox"]`` into a nested dict (values parsed as YAML)."""
    tree, problems = collect_overrides(items)
    if problems:
        raise ConfigError(problems, source="overrides")
    return tree


def collect_overrides(items: Sequence[str]) -> tuple[dict, list[str]]:
    """:func:`parse_overrides` that returns its problems beside the tree, so a loader can report them
    together with the rest; later overrides of one field win, as on a command line."""
    tree: dict = {}
    problems: list[str] = []
    for item in items:
        key, sep, text = item.partition("=")
        parts = [p.strip() for p in split_path(key)]
        if not sep or not all(parts):
            problems.append(f"override {item!r}: expected section.field=value, e.g. train.lr=1e-4")
            continue
        try:
            value = parse_yaml(text)
        except yaml.YAMLError as err:
            problems.append(f"override {item!r}: the value is not valid YAML ({yaml_reason(err)})")
            continue
        tree = deep_merge(tree, nest(join_path(*parts), value))
    return tree, problems


# -- paths into the schema -------------------------------------------------------------------------

class FieldLocation(NamedTuple):
    """Where a dotted path points in the schema: its normalized form (plug-in options under their
    ``extra`` field), a problem (None when the path is a field) and what it names: a ``section``, a
    ``free`` key inside a mapping field, or a ``leaf`` value."""

    path: str
    problem: str | None
    kind: FieldKind


def extra_field(cls: type) -> str | None:
    """The mapping field of section ``cls`` that collects undeclared keys (plug-in options), if any."""
    return next((f.name for f in dataclasses.fields(cls) if f.metadata.get("extra")), None)


def field_paths(cls: type = Scenario, prefix: str = "") -> list[str]:
    """Every dotted field path of the schema rooted at ``cls`` (sections and leaves)."""
    out = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = join_path(prefix, f.name)
        out.append(path)
        tp = _unwrap(hints[f.name])
        if dataclasses.is_dataclass(tp):
            out += field_paths(tp, path)
    return out


def locate_field(path: str, root: type = Scenario) -> FieldLocation:
    """Walk dotted ``path`` through the schema rooted at ``root``.

    Keys below a mapping field are free; a key a section does not declare goes under the section's
    ``extra`` field when it has one (``strategy.eta`` → ``strategy.options.eta``), else is a problem.
    """
    parts = split_path(path)
    if not all(parts):
        return FieldLocation(path, f"{path!r} is not a dotted field path such as train.lr", "leaf")
    section: Any = root
    kind: FieldKind = "section"
    out: list[str] = []
    for part in parts:
        if kind == "free":
            out.append(part)
            continue
        if kind == "leaf":
            return FieldLocation(path, f"{join_path(*out)} is a value, not a section: it has no field "
                                       f"{part!r}", "leaf")
        if part not in {f.name for f in dataclasses.fields(section)}:
            extra = extra_field(section)
            if extra is None:
                return FieldLocation(path, unknown_field_message(path, root), "leaf")
            out += [extra, part]
            kind = "free"
            continue
        out.append(part)
        tp = _unwrap(get_type_hints(section)[part])
        section, kind = (tp, "section") if dataclasses.is_dataclass(tp) else \
            (None, "free" if _is_mapping(tp) else "leaf")
    return FieldLocation(join_path(*out), None, kind)


def resolve_field_path(path: str, root: type = Scenario) -> tuple[str, str | None]:
    """(normalized path, problem or None) for a dotted field path, e.g. ``strategy.eta`` →
    ``("strategy.options.eta", None)``."""
    location = locate_field(path, root)
    return location.path, location.problem


def unknown_field_message(path: str, root: type = Scenario) -> str:
    """``path`` is not a field: say so with the closest real paths."""
    close = difflib.get_close_matches(path, field_paths(root), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
        "; see fedray/config/schema.py for the fields"
    return f"{path!r} is not a scenario field{hint}"


def flatten_fields(tree: Mapping[str, Any], is_leaf: Callable[[Any], bool] | None = None,
                   root: type = Scenario, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) pairs of a nested or dotted mapping of fields; descends into a value
    until ``is_leaf(value)`` (default: not a mapping), an empty mapping, or a schema leaf."""
    is_leaf = is_leaf or (lambda v: not isinstance(v, Mapping))
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if is_leaf(value) or not value or locate_field(path, root).kind == "leaf":
            yield path, value
        else:
            yield from flatten_fields(value, is_leaf, root, path + ".")


def normalize_paths(tree: Mapping[str, Any], where: str,
                    root: type = Scenario) -> tuple[dict[str, Any], list[str]]:
    """Nested or dotted mapping of fields → {normalized dotted path: value}, plus a problem (prefixed
    with ``where``) for each path that is not a field."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in flatten_fields(tree, root=root):
        normalized, problem = resolve_field_path(key, root)
        if problem:
            problems.append(f"{where}.{key}: {problem}")
        else:
            out[normalized] = value
    return out, problems


def _unwrap(tp: Any) -> Any:
    """``Optional[X]`` → ``X``; any other type as it is."""
    if get_origin(tp) in (Union, types.UnionType):
        arms = [a for a in get_args(tp) if a is not type(None)]
        return arms[0] if len(arms) == 1 else tp
    return tp


def _is_mapping(tp: Any) -> bool:
    return tp in (Mapping, dict) or get_origin(tp) in (Mapping, dict)
