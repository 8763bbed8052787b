"""``fedray validate FILE [key=value ...]``: report every problem in a scenario, or confirm it is valid."""

from __future__ import annotations

import argparse

from fedray.config.load import load_scenario

HELP = "check a scenario file and print every problem found"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides")


def main(args: argparse.Namespace) -> int:
    import fedray.checks  # noqa: F401  (registry-aware checks)

    scenario = load_scenario(args.scenario, args.overrides)  # raises ConfigError listing all problems
    print(f"ok: {args.scenario} is a valid scenario ({scenario.name!r})")
    return 0
