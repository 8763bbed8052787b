"""Which hyperparameters set runs of one method and scenario apart, so a report never averages them.

A sweep's trials share a method and a scenario but differ in what the sweep searched (``train.lr``,
``lora.rank``, ...). Averaging them would present one "mean ± std" over different configurations. The
report therefore groups runs by their method, scenario *and* every scenario field that varies among the
runs of that (method, scenario) cell, except the fields that name or seed a run (:data:`NOT_SETTINGS`):
runs that differ only by seed are repetitions and are averaged; the others get rows of their own.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Sequence

#: Fields that do not make a configuration: the run's name, its seed, where it writes, what it runs on.
NOT_SETTINGS = ("name", "description", "seed")
NOT_SETTING_SECTIONS = ("output.", "resources.")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested scenario mapping as dotted path → leaf value (lists are leaves)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _is_setting(path: str) -> bool:
    return path not in NOT_SETTINGS and not path.startswith(NOT_SETTING_SECTIONS)


def varied_settings(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The dotted fields whose values differ among ``configs`` (flattened), in first-seen order."""
    flat = [flatten(c) for c in configs]
    paths = list(dict.fromkeys(p for f in flat for p in f))
    return [p for p in paths if _is_setting(p)
            and len({json.dumps(f.get(p), sort_keys=True, default=str) for f in flat}) > 1]


def setting_labels(cells: Sequence[tuple[str, str]], configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per run, the ``path=value`` label of its varied settings within its (method, scenario) cell
    (empty when the runs of the cell differ only by seed)."""
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, cell in enumerate(cells):
        members[cell].append(i)
    labels = [""] * len(configs)
    for indices in members.values():
        varied = varied_settings([configs[i] for i in indices])
        for i in indices:
            flat = flatten(configs[i])
            labels[i] = ", ".join(f"{p}={_short(flat.get(p))}" for p in varied)
    return labels


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
