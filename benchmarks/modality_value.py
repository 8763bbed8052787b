"""How much each modality is worth on the ``glyphs`` task: train and test with both, image only, text only.

Centralised LoRA fine-tuning of the tiny offline VLM (no federation), with the ``scenarios/mini.yaml``
model and training settings, the same seed, data split, step budget and batch order for every arm. A
missing modality is absent (its field is None, so the prompt has no image slot or no text line), never
imputed. Answers are parsed strictly: a generation counts only if it is exactly the right option (its
text, or its lettered form when the prompt letters the options).

    .venv/bin/python benchmarks/modality_value.py                 # about 5 minutes on 2 CPU cores
    .venv/bin/python benchmarks/modality_value.py --steps 100     # a quick smoke run
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from fedray.client.evaluate import generate_answers  # noqa: E402
from fedray.client.metrics import normalize  # noqa: E402
from fedray.client.objectives import LocalObjective  # noqa: E402
from fedray.client.train import local_train  # noqa: E402
from fedray.config.schema import LoraConfig, ModelConfig, TinyVlmConfig, TrainConfig  # noqa: E402
from fedray.data.sources import load_source  # noqa: E402
from fedray.models.base import build_model  # noqa: E402
from fedray.models.collate import Collator  # noqa: E402
from fedray.models.lora import apply_lora  # noqa: E402
from fedray.seeding import derive_rng, derive_seed, torch_seeded  # noqa: E402

ARMS: dict[str, tuple[bool, bool]] = {  # arm -> (keep image, keep text)
    "image+text": (True, True),
    "image only": (True, False),
    "text only": (False, True),
}
# scenarios/mini.yaml's adapter: attention + MLP of the language model and the output head, with the
# projector trained in full.
LORA = LoraConfig(rank=16, alpha=16.0,
                  target_modules=r".*(language_model.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj"
                                 r"|down_proj)|lm_head)",
                  modules_to_save=("multi_modal_projector",))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps per arm")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0, help="data split, LoRA init and batch order")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--max-length", type=int, default=200, help="token limit per sample")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a glyphs source option, e.g. --option image_size=32 (repeatable)")
    parser.add_argument("--source", default="glyphs", help="data source (glyphs, digits)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {list(ARMS)}")
    parser.add_argument("--tiny", action="append", default=[], metavar="KEY=VALUE",
                        help="a model.tiny field, e.g. --tiny vision=efficientnet_lite0 --tiny image_size=96")
    return parser.parse_args()


def source_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["image_size=32", "scripts=Latin,Greek"]`` → options (ints where they parse, lists on commas)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if "," in value:
            options[key] = value.split(",")
        else:
            options[key] = int(value) if value.lstrip("-").isdigit() else value
    return options


def drop_modalities(rows: Sequence[Mapping[str, Any]], keep_image: bool, keep_text: bool) -> list[dict]:
    """Copies of ``rows`` with the dropped modality set to None (absent, not imputed)."""
    return [{**row, "image": row["image"] if keep_image else None, "text": row["text"] if keep_text else None}
            for row in rows]


def answer_index(choices: Sequence[str]) -> dict[str, int]:
    """Normalised valid answers → option index: each option's text, and its lettered form if prompts
    letter the options (the training target is then "(B) Greek")."""
    index = {normalize(c): i for i, c in enumerate(choices)}
    try:
        from fedray.data.prompts import format_choice
    except ImportError:  # options are not lettered; the plain text is the only valid form
        return index
    index.update({normalize(format_choice(i, c)): i for i, c in enumerate(choices)})
    return index


def predictions(rows: Sequence[Mapping[str, Any]], generations: Sequence[str],
                label_names: Sequence[str]) -> list[int | None]:
    """The option index each generation names, None where it is not exactly one option (invalid); an
    open question (digits: no options) is answered by naming its label."""
    return [answer_index(row["choices"] or label_names).get(normalize(g))
            for row, g in zip(rows, generations)]


def score(rows: Sequence[Mapping[str, Any]], predicted: Sequence[int | None],
          label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, invalid rate and per-class accuracy (a class's share of its rows answered right)."""
    hits = [p == row["label"] for row, p in zip(rows, predicted)]
    per_class = {}
    for label, name in enumerate(label_names):
        mine = [hit for row, hit in zip(rows, hits) if row["label"] == label]
        per_class[name] = sum(mine) / max(len(mine), 1)
    return {"accuracy": sum(hits) / len(rows), "invalid": sum(p is None for p in predicted) / len(rows),
            "per_class": per_class}


def run_arm(name: str, train_rows: list[dict], test_rows: list[dict], label_names: Sequence[str],
            args: argparse.Namespace) -> dict:
    """Fresh model and adapter, ``args.steps`` steps on the arm's rows, strict accuracy on its test rows."""
    keep_image, keep_text = ARMS[name]
    built = build_model(ModelConfig(max_length=args.max_length,
                                    tiny=TinyVlmConfig(**source_options(args.tiny))))
    with torch_seeded(derive_seed(args.seed, "lora_init")):
        model = apply_lora(built.model, LORA)
    collator = Collator(built.processor, args.max_length)
    cfg = TrainConfig(local_steps=args.steps, batch_size=args.batch_size, lr=args.lr)
    start = time.perf_counter()
    with torch_seeded(derive_seed(args.seed, "dropout")):
        stats = local_train(model, collator, drop_modalities(train_rows, keep_image, keep_text), cfg,
                            LocalObjective(), {}, derive_rng(args.seed, "batches"))
    train_s = time.perf_counter() - start
    rows = drop_modalities(test_rows, keep_image, keep_text)
    generations = generate_answers(model, collator, rows, batch_size=64, max_new_tokens=12)
    return {"arm": name, "steps": stats.steps, "loss": stats.last_loss, "train_s": train_s,
            "total_s": time.perf_counter() - start, "example": generations[0],
            **score(rows, predictions(rows, generations, label_names), label_names)}


def main() -> None:
    started = time.perf_counter()
    args = parse_args()
    torch.set_num_threads(args.threads)
    options = source_options(args.option)
    splits = load_source(args.source, None, options, args.seed, test_fraction=args.test_fraction)
    train_rows, test_rows = splits.train.to_pylist(), splits.test.to_pylist()
    chance = 1.0 / len(splits.label_names)
    print(f"{args.source} {options or '(defaults)'}: {len(train_rows)} train / {len(test_rows)} test rows, "
          f"{len(splits.label_names)} classes ({', '.join(splits.label_names)}); seed {args.seed}")
    results = []
    for name in args.arms.split(","):
        results.append(run_arm(name, train_rows, test_rows, splits.label_names, args))
        r = results[-1]
        per_class = ", ".join(f"{k} {v:.2f}" for k, v in r["per_class"].items())
        print(f"  {name}: {r['train_s']:.0f}s train, {r['total_s']:.0f}s total, last loss {r['loss']:.3f}, "
              f"first generation {r['example']!r}; per class: {per_class}", flush=True)
    print(f"\nwall time {time.perf_counter() - started:.0f}s on {args.threads} torch threads")
    print(f"{'arm':<12} {'train steps':>11} {'test accuracy':>13} {'invalid rate':>12} {'chance':>7}")
    for r in results:
        print(f"{r['arm']:<12} {r['steps']:>11d} {r['accuracy']:>13.3f} {r['invalid']:>12.3f} {chance:>7.3f}")


if __name__ == "__main__":
    main()
