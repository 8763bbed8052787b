"""YAML reading and writing with one float rule, shared by scenario files, sweep files and overrides.

PyYAML follows YAML 1.1, which reads ``1e-4`` as the *string* ``'1e-4'`` (it wants ``1.0e-4``). Config
authors write ``lr: 1e-4`` and mean a number, so :class:`YamlLoader` reads it as a float, and
:class:`YamlDumper` quotes the string ``'1e-4'`` so that it stays a string when read back.

Reading is bounded, because a config file may come from anyone: a file over :data:`MAX_YAML_BYTES` is
refused unread, a document whose aliases would expand to more than :data:`MAX_YAML_NODES` values (the
"billion laughs" bomb) or that refers to itself is refused before it is built, and a key given twice in
one mapping is an error rather than a silent "last one wins".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fedray.errors import ConfigError

#: Largest config file read, in bytes (a scenario is a few KiB; a sweep a few tens).
MAX_YAML_BYTES = 1 << 20
#: Most values a document may hold once every alias is expanded (a scenario holds a few hundred).
MAX_YAML_NODES = 100_000


class YamlLoader(yaml.SafeLoader):
    """Safe loader that also reads ``1e-4`` as a float, and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicate_keys(loader: YamlLoader, node: yaml.MappingNode) -> None:
    """A key written twice in one mapping (``<<`` merges excepted: explicit keys override those)."""
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r} (first given at line {seen[key].line + 1}); keep one of them",
                problem_mark=key_node.start_mark)
        seen[key] = key_node.start_mark


class YamlDumper(yaml.SafeDumper):
    """Safe dumper with the same float rule, so the string ``'1e-4'`` is quoted and stays a string."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
for _cls in (YamlLoader, YamlDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def parse_yaml(text: str) -> Any:
    """One YAML document (or a bare value such as ``1e-4`` or ``[1, 2]``); raises ``yaml.YAMLError``,
    also for a document over the alias-expansion limit, a self-referring one or one nested too deep."""
    loader = YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return loader.construct_document(node)
    except RecursionError:
        raise yaml.YAMLError("the document is nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()


def _check_expanded_size(root: yaml.Node) -> None:
    """Count the values ``root`` holds with every alias expanded, without expanding any (each node is
    counted once and its total reused), and refuse more than :data:`MAX_YAML_NODES` or a cycle."""
    totals: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in totals:
            return totals[key]
        if key in active:
            raise yaml.MarkedYAMLError(problem="an alias refers to the collection that contains it",
                                       problem_mark=node.start_mark)
        active.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1 + sum(size(child) for child in children)
        active.discard(key)
        if total > MAX_YAML_NODES:
            raise yaml.MarkedYAMLError(
                problem=f"aliases expand this document to over {MAX_YAML_NODES:,} values (an alias bomb?); "
                        "write the values out, or use fewer nested aliases", problem_mark=node.start_mark)
        totals[key] = total
        return total

    size(root)


def dump_yaml(obj: Any) -> str:
    """Block-style YAML of plain data, keys in their given order, readable back by :func:`parse_yaml`."""
    return yaml.dump(obj, Dumper=YamlDumper, sort_keys=False, allow_unicode=True)


def read_yaml_file(path: str | Path, what: str, shipped_dir: str) -> Any:
    """The document in config file ``path`` (an empty file reads as ``{}``); raise ConfigError if the
    file is missing or is not valid YAML.

    ``what`` names the file in messages (``scenario file``) and ``shipped_dir`` is where the shipped
    ones live, so a mistyped path is answered with where to look.
    """
    path = Path(path)
    try:
        raw = parse_yaml(read_config_text(path, what, shipped_dir))
    except yaml.YAMLError as err:
        raise ConfigError([f"YAML syntax error: {yaml_reason(err)}"], source=str(path)) from None
    return {} if raw is None else raw


def read_config_text(path: Path, what: str, shipped_dir: str = "") -> str:
    """The UTF-8 text of config file ``path``: a ConfigError naming the file if it is missing, not a
    regular file, over :data:`MAX_YAML_BYTES`, unreadable or not UTF-8 text."""
    look = f"; list the shipped ones with `ls {shipped_dir}/`" if shipped_dir else ""
    try:
        if not path.is_file():
            state = "is not a file" if path.exists() else "does not exist"
            raise ConfigError([f"{what} {path} {state}{look}"], source=str(path))
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError([f"{what} is {size:,} bytes, over the {MAX_YAML_BYTES:,}-byte limit for a "
                               "config file; is it the right file?"], source=str(path))
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError([f"cannot read {what} {path}: {err.strerror or err}"], source=str(path)) from None
    return decode_utf8(data, what, str(path))


def decode_utf8(data: bytes, what: str, source: str) -> str:
    """``data`` as UTF-8 text (a UTF-8 byte-order mark is dropped), or a ConfigError saying where not."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ConfigError([f"{what} is UTF-16 text; save it as UTF-8"], source=source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ConfigError([f"{what} is not UTF-8 text (byte 0x{data[err.start]:02x} at line {line}); is it "
                           "a YAML file? Save it as UTF-8"], source=source) from None
    if "\x00" in text:
        raise ConfigError([f"{what} holds NUL characters: it is binary, not YAML"], source=source)
    return text


def yaml_reason(err: yaml.YAMLError) -> str:
    """What a YAML parser objected to and where (line and column, 1-based)."""
    mark = getattr(err, "problem_mark", None)
    reason = getattr(err, "problem", None) or str(err)
    return f"{reason} at line {mark.line + 1}, column {mark.column + 1}" if mark else reason
