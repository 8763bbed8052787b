"""``fedray data check SCENARIO [key=value ...]``: is the local copy of every dataset a scenario reads whole?

Meant for the minute before a long run: it loads each source the scenario names (``data.source``,
``data.secondary``, ``data.eval_sources``) exactly as a run would, but keeps images as stored (no
downscaling), so every file must be present and every image's header readable; it then verifies the full
structure of up to ``--max-images`` images per source, spread evenly over the rows. It prints the row count
of each split the dataset ships and exits 2 listing what is missing or unreadable.
"""

from __future__ import annotations

import argparse
import io
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from fedray.config.load import load_scenario
from fedray.config.schema import Scenario
from fedray.errors import FedRayError

HELP = "check a scenario's local dataset copies: files, rows per split, images readable"
MAX_IMAGES = 1000


@dataclass
class SourceCheck:
    """What one source's check found."""

    where: str
    source: str
    root: str | None
    splits: dict[str, int] = field(default_factory=dict)
    images: int = 0
    verified: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides")
    parser.add_argument("--max-images", type=int, default=MAX_IMAGES,
                        help=f"images fully verified per source, spread over its rows (default {MAX_IMAGES}; "
                             "every image's header is read regardless)")


def check(args: argparse.Namespace) -> int:
    import fedray.checks  # noqa: F401  (roots and model paths are checked at load: a missing one is an error)

    if args.max_images < 0:
        raise FedRayError(f"--max-images {args.max_images}: give 0 or more")
    scenario = load_scenario(args.scenario, args.overrides)
    results = [check_source(where, name, root, options, args.max_images)
               for where, name, root, options in scenario_sources(scenario)]
    d = scenario.data
    fractions = {"test": d.test_fraction, "validation": d.validation_fraction}
    print("\n".join(line for result in results for line in describe(result, fractions)))
    problems = [f"{r.where} ({r.source}): {p}" for r in results for p in r.problems]
    if problems:
        print(f"\n{len(problems)} problem(s); fix them before a run:")
        print("\n".join(f"  - {p}" for p in problems))
        return 2
    print(f"\nall {len(results)} source(s) ok")
    return 0


def scenario_sources(scenario: Scenario) -> list[tuple[str, str, str | None, Mapping[str, Any]]]:
    """(where, source name, root, options) of every source the scenario reads."""
    d = scenario.data
    sources = [("data", d.source, d.root, d.options)]
    if d.secondary is not None:
        sources.append(("data.secondary", d.secondary.source, d.secondary.root, d.secondary.options))
    sources += [(f"data.eval_sources[{i}]", src.source, src.root, src.options)
                for i, src in enumerate(d.eval_sources)]
    return sources


def check_source(where: str, name: str, root: str | None, options: Mapping[str, Any],
                 max_images: int) -> SourceCheck:
    """Load source ``name`` with its images as stored, count its rows, verify up to ``max_images`` images."""
    from fedray.data.sources import DATA_SOURCES, read_source

    result = SourceCheck(where, name, root)
    start = time.perf_counter()
    options = dict(options)
    if "max_image_side" in DATA_SOURCES.param_names(name):
        options["max_image_side"] = None  # keep the stored bytes: no decoding to downscale
    try:
        data = read_source(name, options, root, where)
    except FedRayError as err:
        result.problems.append(str(err))
        return result
    images = [(split, i, b) for split, table in data.splits.items()
              for i, b in enumerate(table.column("image").to_pylist()) if b is not None]
    result.splits = {split: table.num_rows for split, table in data.splits.items()}
    result.images = len(images)
    for split, i, data_bytes in spread(images, max_images):
        problem = image_problem(data_bytes)
        if problem:
            result.problems.append(f"split {split!r} row {i + 1} (id {data.splits[split]['id'][i]}): "
                                   f"unreadable image: {problem}")
        result.verified += 1
    result.seconds = time.perf_counter() - start
    return result


def spread(items: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` of ``items``, evenly spaced (first and last included), in order."""
    if limit >= len(items):
        return items
    if limit <= 0:
        return []
    if limit == 1:
        return items[:1]
    step = (len(items) - 1) / (limit - 1)
    return [items[round(k * step)] for k in range(limit)]


def image_problem(data: bytes) -> str | None:
    """None if ``data`` is a structurally valid image (PIL ``verify``), else what is wrong."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except Exception as exc:  # PIL raises many unrelated types for broken files
        return f"{type(exc).__name__}: {exc}"
    return None


def describe(result: SourceCheck, fractions: Mapping[str, float]) -> list[str]:
    """A source's lines: name and root, rows per split (and how a run fills a missing one), images."""
    head = f"{result.where}: {result.source}" + (f" at {result.root}" if result.root else "")
    if not result.splits:
        return [head, "  not loaded (see the problems below)"]
    splits = ", ".join(f"{split} {n}" for split, n in result.splits.items())
    missing = [f"{s}: a run carves {fractions[s]:g} of train" if fractions[s] else f"no {s} split"
               for s in ("validation", "test") if s not in result.splits]
    drawn = "".join(f"; {m}" for m in missing)
    images = (f"  images: {result.images} rows with an image, {result.verified} verified"
              if result.images else "  images: none (a text-only source)")
    return [head, f"  rows: {splits} (as shipped{drawn})", f"{images} ({result.seconds:.1f} s)"]
