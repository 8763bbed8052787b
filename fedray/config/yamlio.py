"""YAML reading and writing with one float rule, shared by scenario files, sweep files and overrides.

PyYAML follows YAML 1.1, which reads ``1e-4`` as the *string* ``'1e-4'`` (it wants ``1.0e-4``). Config
authors write ``lr: 1e-4`` and mean a number, so :class:`YamlLoader` reads it as a float, and
:class:`YamlDumper` quotes the string ``'1e-4'`` so that it stays a string when read back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fedray.errors import ConfigError


class YamlLoader(yaml.SafeLoader):
    """Safe loader that also reads ``1e-4`` as a float."""


class YamlDumper(yaml.SafeDumper):
    """Safe dumper with the same float rule, so the string ``'1e-4'`` is quoted and stays a string."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
for _cls in (YamlLoader, YamlDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def parse_yaml(text: str) -> Any:
    """One YAML document (or a bare value such as ``1e-4`` or ``[1, 2]``); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=YamlLoader)


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
    if not path.is_file():
        state = "is not a file" if path.exists() else "does not exist"
        raise ConfigError([f"{what} {path} {state}; list the shipped ones with `ls {shipped_dir}/`"],
                          source=str(path))
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError([f"YAML syntax error: {yaml_reason(err)}"], source=str(path)) from None
    return {} if raw is None else raw


def yaml_reason(err: yaml.YAMLError) -> str:
    """What a YAML parser objected to and where (line and column, 1-based)."""
    mark = getattr(err, "problem_mark", None)
    reason = getattr(err, "problem", None) or str(err)
    return f"{reason} at line {mark.line + 1}, column {mark.column + 1}" if mark else reason
