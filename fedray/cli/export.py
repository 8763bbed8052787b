"""``fedray export RUN_DIR --to DIR [--which best|final] [--base] [--merged]``: a run's adapter for use
outside fedray.

Writes the adapter as a PEFT adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``)
that ``PeftModel.from_pretrained(base, DIR)`` loads. ``--which best`` (the default) is the adapter of the
best validation round, ``final`` the last global one. ``--base`` also writes the base model the run
started from (rebuilt from the run's ``config.yaml``) as ``DIR/base``, a Hugging Face model directory:
needed for ``tiny-vlm``, which exists nowhere else. ``--merged`` writes ``DIR/merged``: the base with the
adapter folded into its weights (PEFT's ``merge_and_unload``), loadable without PEFT. Older run
directories (``global_adapter.safetensors``, no config) are exported too: the config is rebuilt.
"""

from __future__ import annotations

import argparse

HELP = "write a run's adapter as a PEFT adapter directory (optionally the base and the merged model)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run directory")
    parser.add_argument("--to", required=True, help="new (or empty) directory to write")
    parser.add_argument("--which", choices=("best", "final"), default="best",
                        help="best: the best validation round's adapter (default); final: the last "
                             "global one")
    parser.add_argument("--base", action="store_true",
                        help="also write the base model, rebuilt from the run's config, to DIR/base")
    parser.add_argument("--merged", action="store_true",
                        help="also write the merged model (adapter folded into the weights) to DIR/merged")


def main(args: argparse.Namespace) -> int:
    from fedray.engine.export import export_run

    out = export_run(args.run_dir, args.to, args.which, base=args.base, merged=args.merged)
    print(f"adapter ({args.which}) → {out.adapter}   load: PeftModel.from_pretrained(base, '{out.adapter}')")
    if out.base is not None:
        print(f"base model → {out.base}")
    if out.merged is not None:
        print(f"merged model → {out.merged}")
    return 0
