"""``fedray`` command line: one module per subcommand, registered by name."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from fedray.cli import baselines as baselines_cmd
from fedray.cli import bench as bench_cmd
from fedray.cli import config as config_cmd
from fedray.cli import data as data_cmd
from fedray.cli import evidence as evidence_cmd
from fedray.cli import export as export_cmd
from fedray.cli import report as report_cmd
from fedray.cli import run as run_cmd
from fedray.cli import tune as tune_cmd
from fedray.cli import validate as validate_cmd
from fedray.errors import FedRayError

SUBCOMMANDS = {"run": run_cmd, "validate": validate_cmd, "config": config_cmd, "data": data_cmd,
               "baselines": baselines_cmd, "bench": bench_cmd,
               "tune": tune_cmd, "report": report_cmd, "export": export_cmd,
               "evidence": evidence_cmd}

#: What ``fedray --help`` says above the subcommands (the module docstring is for developers).
DESCRIPTION = ("fedray simulates federated LoRA fine-tuning of multimodal LLMs on Ray.\n"
               "A scenario file says which data, how it is split over clients, which model and algorithm.")
QUICK_START = """quick start:
  fedray validate scenarios/mini.yaml          check a scenario (or a tune_spaces/ sweep file)
  fedray run scenarios/mini.yaml train.lr=1e-3 run it, overriding any field with key.path=value

`fedray COMMAND --help` shows a command's options; docs: README.md and docs/."""


def version() -> str:
    """The installed package's version (the source tree's when it is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("fedray")
    except PackageNotFoundError:
        from fedray import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedray", description=DESCRIPTION, epilog=QUICK_START,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fedray {version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       title="commands")
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
    except BrokenPipeError:  # `fedray config show ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
