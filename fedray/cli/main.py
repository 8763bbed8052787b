"""``fedray`` command line: one module per subcommand, registered by name."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from fedray.cli import baselines as baselines_cmd
from fedray.cli import bench as bench_cmd
from fedray.cli import config as config_cmd
from fedray.cli import data as data_cmd
from fedray.cli import evidence as evidence_cmd
from fedray.cli import report as report_cmd
from fedray.cli import run as run_cmd
from fedray.cli import tune as tune_cmd
from fedray.cli import validate as validate_cmd
from fedray.errors import FedRayError

SUBCOMMANDS = {"run": run_cmd, "validate": validate_cmd, "config": config_cmd, "data": data_cmd,
               "baselines": baselines_cmd, "bench": bench_cmd,
               "tune": tune_cmd, "report": report_cmd, "evidence": evidence_cmd}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedray", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module in SUBCOMMANDS.items():
        module.add_parser(subparsers.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.debug else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # The run directory's log handler lowers the fedray logger to INFO; the terminal stays at `level`.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    try:
        return SUBCOMMANDS[args.command].main(args)
    except FedRayError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
