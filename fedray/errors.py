"""The exceptions fedray raises on purpose.

Every error a user can cause derives from :class:`FedRayError`; the CLI prints its message without a
traceback (unless ``--debug``) and exits non-zero. Messages say what was received, what was expected and
how to fix it.
"""

from __future__ import annotations


class FedRayError(Exception):
    """Base class of every error fedray raises for bad input or an impossible request."""


class ConfigError(FedRayError):
    """A scenario (or override) is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"{len(self.problems)} problem(s){where}:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class DataError(FedRayError):
    """A dataset is missing, malformed, or cannot be split as asked."""


class ModelError(FedRayError):
    """A model cannot be built or loaded as configured."""


class SchedulingError(FedRayError):
    """The cluster cannot place what the scenario asks for, or a round could not complete."""
