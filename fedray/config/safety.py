"""Load-time checks of what a scenario reaches outside itself: the run name, the output root, the cluster
address and the environment variables it may read.

They run with every other check when a scenario is loaded (``fedray validate`` included), so a run name
that would escape ``output.root`` or exceed the file system's name limit, an output root that is a file
or a pseudo file system, or a malformed cluster address is one line of the single ConfigError instead of
a traceback half-way into a run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fedray.config.schema import Scenario

#: Longest scenario name, in UTF-8 bytes: the run directory adds ``-YYYYmmdd-HHMMSS-N`` and a sweep
#: adds a trial suffix, all within the 255-byte limit of one file name.
MAX_NAME_BYTES = 150
#: Longest single component of a path fedray creates (the usual file-system limit, NAME_MAX).
MAX_COMPONENT_BYTES = 255
#: Kernel file systems that cannot hold a run directory.
PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
#: Environment variables a scenario may read besides those named ``FEDRAY_*``: locations, never secrets.
ENV_ALLOWED = frozenset({"HOME", "TMPDIR"})
ENV_PREFIX = "FEDRAY_"
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")
_ADDRESS = re.compile(r"^(?:ray://)?(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>\d+)$")


def env_allowed(name: str) -> bool:
    """Whether ``${name}`` may be expanded in a scenario: ``FEDRAY_*`` or one of :data:`ENV_ALLOWED`."""
    return name.startswith(ENV_PREFIX) or name in ENV_ALLOWED


def scenario_reach_problems(scenario: Scenario) -> list[str]:
    """Every problem with the run name, output root and cluster address of ``scenario``."""
    return (name_problems(scenario.name) + output_root_problems(scenario.output.root)
            + address_problems(scenario.resources.ray_address))


def name_problems(name: str) -> list[str]:
    """The scenario name becomes a directory under ``output.root``: one plain file name, not too long."""
    if not name.strip():
        return ["name: empty; give the scenario a name (it names the run directory)"]
    if _UNSAFE_NAME.search(name) or name in (".", ".."):
        return [f"name: {name!r} is not a plain file name (it holds a slash, a control character or is "
                "'.'/'..'), so the run directory would land outside output.root; use letters, digits, "
                "'-', '_' and '.'"]
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return [f"name: {size} bytes long, over the {MAX_NAME_BYTES}-byte limit (the run directory's name "
                "must fit the file system's 255-byte limit with its time stamp); shorten it"]
    return []


def output_root_problems(root: str) -> list[str]:
    """``output.root`` must be (or be creatable as) a writable directory on a real file system."""
    return directory_problems(root, "output.root")


def directory_problems(given: str, field: str) -> list[str]:
    """Problems with ``given`` as a directory fedray will create or write into, each prefixed ``field``
    (``output.root``, ``--run-dir``): a file in the way, a kernel file system, no write permission, a
    path component longer than a file name may be."""
    if not given.strip():
        return [f"{field}: empty; give a directory (e.g. runs)"]
    if "\x00" in given:
        return [f"{field}: {given!r} holds a NUL character, which no path may; fix it"]
    path = Path(os.path.abspath(os.path.expanduser(given)))
    long_parts = [p for p in path.parts if len(p.encode("utf-8")) > MAX_COMPONENT_BYTES]
    if long_parts:
        return [f"{field}: the path component {long_parts[0][:40]!r}... is over {MAX_COMPONENT_BYTES} "
                "bytes, longer than a file name can be; shorten it"]
    if any(path == pseudo or pseudo in path.parents for pseudo in PSEUDO_ROOTS):
        return [f"{field}: {given!r} is under a kernel file system ({', '.join(map(str, PSEUDO_ROOTS))}) "
                "that cannot hold files; choose a directory on a disk"]
    existing = next(p for p in (path, *path.parents) if os.path.lexists(p))
    if not existing.is_dir():
        what = "is a file" if existing == path else f"lies under {str(existing)!r}, which is a file"
        return [f"{field}: {given!r} {what}, not a directory; give a directory"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"{field}: {str(existing)!r} is not writable by this user; choose a directory you can "
                "write to"]
    return []


def address_problems(address: str | None) -> list[str]:
    """``resources.ray_address``: ``auto``, or ``host:port`` / ``ray://host:port`` with a port in range."""
    if address is None or address == "auto":
        return []
    match = _ADDRESS.match(address.strip())
    if not match or not 0 < int(match.group("port")) < 65536:
        return [f"resources.ray_address: {address!r} is not a cluster address; give host:port (e.g. "
                "10.0.0.5:6379), ray://host:10001, auto, or null to start Ray locally"]
    return []
