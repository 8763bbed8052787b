"""Checks shared by the sources' options, with errors that name the ``data.options`` key."""

from __future__ import annotations

from collections.abc import Sequence

from fedray.errors import DataError


def check_int_option(name: str, value: object, minimum: int = 1) -> None:
    """``data.options.<name>`` must be an integer ≥ ``minimum`` (bools are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(f"data.options.{name} must be an integer >= {minimum}, got {value!r}")


def check_subset_option(name: str, chosen: Sequence[str] | None, known: Sequence[str],
                        default: Sequence[str]) -> tuple[str, ...]:
    """At least two of ``known`` (``default`` when None), returned in ``known``'s order: labels follow it."""
    if chosen is None:
        return tuple(default)
    if isinstance(chosen, str) or not all(isinstance(c, str) for c in chosen):
        raise DataError(f"data.options.{name} must be a list of names, got {chosen!r}")
    unknown = sorted(set(chosen) - set(known))
    if unknown or len(set(chosen)) < 2:
        raise DataError(f"data.options.{name} must name at least two of: {', '.join(known)}; got "
                        f"{list(chosen)!r}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return tuple(k for k in known if k in chosen)
