"""Writes the FedMLLM scenario grid: one YAML per paper condition, and the same grid on an offline task.

    python scenarios/grid.py            # (re)write scenarios/{hateful_memes,crisismmd,medical,offline}/
    python scenarios/grid.py --check    # exit 1 if a committed file differs from what this would write

Conditions (FedMLLM §6.4): aligned α ∈ {0.5, 1, 5}; modality missing β ∈ {0.3, 0.4, 0.5}; cross-modal
k ∈ {3, 5, 7} image-only clients; hybrid q ∈ {0.2, 0.3, 0.4}; each also with the modality-agnostic prompt
("-aug"). The paper datasets read ``${FEDRAY_DATA}`` and ``${FEDRAY_MODEL}`` and reproduce the reference's
splits (``mode: fedmllm``, seed 42) and prompts (``prompts.style: fedmllm``); the offline grid runs the tiny
model on the ``glyphs`` task here, in fedray's own wording, and ``evidence/`` the same grid on the tiny
model with its pretrained eye (``make evidence``). Every scenario is scored by both evaluation
protocols (strict, and the reference's under ``fedmllm_*`` keys).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

CONDITIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = (
    [(f"aligned-a{a:g}", {"alpha": a}, {"name": "aligned"}) for a in (0.5, 1.0, 5.0)]
    + [(f"missing-b{b:g}", {}, {"name": "missing", "missing_rate": b}) for b in (0.3, 0.4, 0.5)]
    + [(f"cross-k{k}", {}, {"name": "cross_modal", "image_clients": k}) for k in (3, 5, 7)]
    + [(f"hybrid-q{q:g}", {}, {"name": "hybrid", "absent_rate": q}) for q in (0.2, 0.3, 0.4)]
)

# The reference's training recipe: 50 rounds, 2 of 10 clients, one local epoch at batch 4,
# AdamW (wd 0.1, β2 0.95), lr 2e-5 with a cosine inside each local run, LoRA r 8 / α 8 / dropout 0.05 on
# the language model's q/k/v/o with the token embeddings and the projector trained in full (preset
# fedmllm), sequences of at most 1,200 tokens, gradient checkpointing.
PAPER_BASE: dict[str, Any] = {
    "seed": 42,
    "model": {"name": "hf", "path": "${FEDRAY_MODEL}", "dtype": "bfloat16", "max_length": 1200,
              "gradient_checkpointing": True},
    "lora": {"rank": 8, "alpha": 8, "dropout": 0.05, "preset": "fedmllm"},
    "train": {"local_steps": None, "local_epochs": 1, "batch_size": 4, "lr": 2.0e-5, "weight_decay": 0.1,
              "adam_beta2": 0.95, "lr_schedule": "cosine", "warmup_ratio": 0.01,
              # the reference's round-level cosine, its 2× first round included (docs/protocol.md)
              "round_schedule": {"name": "cosine_warm", "warmup_fraction": 0.01}},
    "strategy": {"name": "fedavg"},
    "federation": {"rounds": 50, "clients_per_round": 2, "sampler": "fedmllm"},
    "prompts": {"style": "fedmllm"},  # the reference's user and assistant turns, character for character
    "eval": {"every": 5, "batch_size": 16, "protocol": ["strict", "fedmllm"]},
    # One client per GPU: an estimated 26-32 GB each with the reference's trained set in bfloat16 (see
    # docs/models.md); the pool takes as many GPUs as the cluster has, up to the 2 clients of a round.
    "resources": {"actors": None, "cpus_per_actor": 4, "gpus_per_actor": 1},
}

DATASETS: dict[str, dict[str, Any]] = {
    "hateful_memes": {
        "data": {"source": "hateful_memes", "root": "${FEDRAY_DATA}/hateful_memes"},
        "partition": {"fedmllm_repair": "all"},
        "eval": {"select_metric": "auc"},
    },
    "crisismmd": {
        "data": {"source": "crisismmd", "root": "${FEDRAY_DATA}/CrisisMMD_v2.0",
                 "options": {"task": "humanitarian", "label_field": "label_image"}},
        "partition": {"fedmllm_repair": "first"},  # the reference repairs only the first label
        "eval": {"select_metric": "macro_f1"},
    },
}

# The offline grid: the tiny model on "glyphs" (script identification from a letter's picture and name),
# sized to finish in a few minutes per run on 2 cores.
OFFLINE_BASE: dict[str, Any] = {
    "seed": 0,
    "data": {"source": "glyphs", "test_fraction": 0.2, "validation_fraction": 0.1},
    "model": {"name": "tiny-vlm", "max_length": 200},  # six lettered options + a letter name
    "lora": {"rank": 16, "alpha": 16,
             "target_modules": ".*(language_model.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
                               "|lm_head)",
             "modules_to_save": ["multi_modal_projector"]},
    "train": {"local_steps": 10, "batch_size": 16, "lr": 3.0e-3},
    "strategy": {"name": "fedavg"},
    "federation": {"rounds": 20, "clients_per_round": 4},
    "eval": {"every": 5, "batch_size": 64, "select_metric": "accuracy", "protocol": ["strict", "fedmllm"]},
    "resources": {"actors": 2, "cpus_per_actor": 1},
}


# The evidence grid (docs/results.md, `make evidence`): the offline grid on the tiny model with its
# pretrained eye (EfficientNet-Lite0, `make assets-eye`), every test split scored with the strict protocol
# only (the claims are about one metric), validation picking the round.
EVIDENCE_BASE: dict[str, Any] = {
    **OFFLINE_BASE,
    "model": {"name": "tiny-vlm", "max_length": 200,
              "tiny": {"vision": "efficientnet_lite0", "image_size": 96}},
    "eval": {"every": 5, "batch_size": 64, "select_metric": "accuracy"},
}


def _merge(base: dict[str, Any], *overs: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for over in overs:
        for key, value in over.items():
            out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def condition_scenarios(prefix: str, base: dict[str, Any], mode: str) -> dict[str, dict[str, Any]]:
    """File stem → scenario dict for every condition, with and without prompt augmentation."""
    out = {}
    for stem, partition, modality in CONDITIONS:
        for aug in (False, True):
            name = f"{stem}-aug" if aug else stem
            out[name] = _merge(base, {
                "name": f"{prefix}-{name}",
                "partition": {"name": "dirichlet", "num_clients": 10, "alpha": 0.5,
                              "min_client_size": 1 if mode == "fedmllm" else 20, "mode": mode, **partition},
                "modality": {**modality, "mode": mode, "agnostic_prompt": aug},
            })
    return out


def medical_scenarios() -> dict[str, dict[str, Any]]:
    """Task heterogeneity: VQA-RAD (image QA) and MedAlpaca (text QA) clients, scored on VQA-RAD and SLAKE.

    Single: 7 VQA-RAD clients, 3 MedAlpaca. Mix: each client lacks each task with chance q = 0.4, as the
    reference's gen_data_medical_vtqa_mix.py. Like the reference, every MedAlpaca card is training data and
    SLAKE is scored in every language.
    """
    base = _merge(PAPER_BASE, {
        "seed": 41,  # the reference's medical scripts seed Python's random with 41
        "data": {"source": "vqa_rad", "root": "${FEDRAY_DATA}/vqa_rad",
                 "secondary": {"source": "medalpaca", "root": "${FEDRAY_DATA}/medalpaca",
                               "options": {"skip_empty": False, "all_train": True}},
                 "eval_sources": [{"source": "slake", "root": "${FEDRAY_DATA}/Slake1.0",
                                   "options": {"english_only": False}}]},
        "partition": {"name": "iid", "num_clients": 10, "min_client_size": 1, "mode": "fedmllm"},
        "eval": {"max_new_tokens": 16},
    })
    single = _merge(base, {"partition": {"secondary_clients": 3}})
    mix = _merge(base, {
        "description": "FedMLLM medical VTQA mix, q = 0.4. The reference draws which clients hold which "
                       "task with numpy left unseeded, so its clients cannot be reproduced; fedray seeds "
                       "that draw with the scenario seed (the coin flips and shards follow the reference's "
                       "seed-41 stream).",
        "partition": {"task_absent_rate": 0.4}})
    out = {}
    for stem, scenario in (("vtqa-single-k7", single), ("vtqa-mix-q0.4", mix)):
        out[stem] = _merge(scenario, {"name": f"medical-{stem}"})
        out[f"{stem}-aug"] = _merge(scenario, {"name": f"medical-{stem}-aug",
                                               "modality": {"agnostic_prompt": True}})
    return out


def offline_task_heterogeneity() -> dict[str, dict[str, Any]]:
    """Offline task heterogeneity: 7 clients identify scripts (image QA), 3 classify Wikipedia topics."""
    return {"tasks-k7": _merge(OFFLINE_BASE, {
        "name": "offline-tasks-k7",
        "data": {"secondary": {"source": "wiki_topics", "root": "${FEDRAY_ASSETS}"}},
        "partition": {"name": "dirichlet", "num_clients": 10, "alpha": 0.5, "min_client_size": 20,
                      "secondary_clients": 3},
        "model": {"max_length": 256},
    })}


def all_scenarios() -> dict[Path, dict[str, Any]]:
    files: dict[Path, dict[str, Any]] = {}
    for dataset, extra in DATASETS.items():
        for stem, scenario in condition_scenarios(dataset, _merge(PAPER_BASE, extra), "fedmllm").items():
            files[HERE / dataset / f"{stem}.yaml"] = scenario
    for stem, scenario in medical_scenarios().items():
        files[HERE / "medical" / f"{stem}.yaml"] = scenario
    offline = condition_scenarios("offline", OFFLINE_BASE, "fedray")
    offline.update(offline_task_heterogeneity())
    for stem, scenario in offline.items():
        files[HERE / "offline" / f"{stem}.yaml"] = scenario
    for stem, scenario in condition_scenarios("evidence", EVIDENCE_BASE, "fedray").items():
        files[HERE / "evidence" / f"{stem}.yaml"] = scenario
    return files


ORDER = ("name", "description", "seed", "mode", "data", "partition", "modality", "prompts", "model", "lora",
         "train", "strategy", "federation", "eval", "resources")


def render(path: Path, scenario: dict[str, Any]) -> str:
    rel = path.relative_to(HERE.parent)
    scenario = {key: scenario[key] for key in ORDER if key in scenario}
    header = (f"# Written by scenarios/grid.py; edit that file, not this one.\n#\n"
              f"#   fedray run {rel}\n#   fedray run {rel} mode=centralized   # or local, zero_shot\n")
    return header + yaml.safe_dump(scenario, sort_keys=False, default_flow_style=None, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    args = parser.parse_args(argv)
    stale = []
    for path, scenario in all_scenarios().items():
        text = render(path, scenario)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python scenarios/grid.py):", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
