"""GPU proof: the assembled model trained by fedray on GPU actors, per configuration: samples/s and memory.

    benchmarks/gpu_check.sh                 # on a machine with an NVIDIA GPU, at most 8 minutes
    benchmarks/gpu_check.sh --dry-run       # anywhere: build and validate every scenario, run nothing

Configurations (all bf16: ``model.dtype: bfloat16``; fractional actors with ``resources.cap_gpu_memory``):

- ``torch-1``, ``torch-2``, ``torch-4``: 1, 2 and 4 client actors per GPU (``gpus_per_actor`` 1, 0.5,
  0.25), each capped at its share of the GPU's memory, plain PyTorch steps;
- ``zero2-1``, ``zero3-1``: one actor per GPU training through a DeepSpeed ZeRO-2 / ZeRO-3 engine over
  nccl (``train.engine.bf16``); with one GPU the group has one rank, so nothing is sharded but the whole
  ZeRO path runs; ``zero2-2``, ``zero3-2``: two such actors sharing one GPU (0.5 each, capped);
- with two or more GPUs visible, also ``zero2-group2``, ``zero3-group2``: one client trained by a group of
  two actors on two GPUs (``resources.actors_per_client: 2``), a real two-rank nccl ZeRO group.

The model is ``model.name: assembled`` (EfficientNet-Lite0 + projector + SmolLM2-135M-Instruct) with its
real weights when ``$FEDRAY_ASSETS`` holds them (``make assets-real``). A GPU machine without network has
none, so the script then writes a stand-in of the same architecture with randomly initialised weights
(SmolLM2-135M's config; fedray's tiny tokenizer with the placeholder token and a ChatML template) and says
so in its output: speeds and memory are the architecture's, losses and accuracies mean nothing.

Each configuration is a real ``python -m fedray run`` subprocess (as ``fedray bench`` runs them): 4 clients
per round on digits, 10 local steps × batch 8, 3 rounds, the final evaluation kept tiny. samples/s =
samples trained per round (4 × 10 × 8) / s/round over rounds 2–3 (evaluation excluded); s/step = client
compute seconds / steps; per actor: the allocator's peak (``memory_mb.actor_peak``, max over fits) and the
process's peak GPU memory as ``nvidia-smi`` reports it (CUDA context included), where it shows pids.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fedray.bench.proctree import BackgroundSampler, process_roles  # noqa: E402
from fedray.config.yamlio import dump_yaml  # noqa: E402

ROUNDS, PER_ROUND, STEPS, BATCH = 3, 4, 10, 8
#: SmolLM2-135M-Instruct's architecture (its config.json), for the random stand-in.
SMOLLM2_135M = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                "max_position_embeddings": 8192, "rope_theta": 100000.0, "rms_norm_eps": 1e-5,
                "hidden_act": "silu", "tie_word_embeddings": True}
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@dataclass(frozen=True)
class Config:
    """One GPU configuration: its name and the scenario sections it sets."""

    name: str
    actors: int
    gpus_per_actor: float
    engine: dict[str, Any] = field(default_factory=lambda: {"name": "torch"})
    actors_per_client: int = 1


def configurations(gpus: int) -> list[Config]:
    """The configurations to run on ``gpus`` visible GPUs (see the module docstring)."""
    configs = [Config(f"torch-{n}", n, 1.0 / n) for n in (1, 2, 4)]
    for stage in (2, 3):
        zero = {"name": "deepspeed", "zero_stage": stage, "bf16": True}
        configs += [Config(f"zero{stage}-1", 1, 1.0, zero), Config(f"zero{stage}-2", 2, 0.5, zero)]
    if gpus >= 2:
        configs += [Config(f"zero{s}-group2", 1, 1.0, {"name": "deepspeed", "zero_stage": s, "bf16": True},
                           actors_per_client=2) for s in (2, 3)]
    return configs


def scenario(config: Config, assembled: dict[str, Any]) -> dict[str, Any]:
    """The scenario mapping of ``config`` with the given ``model.assembled`` paths."""
    return {
        "name": f"gpu-check-{config.name}", "seed": 0,
        "data": {"source": "digits", "test_fraction": 0.05, "max_test_samples": 8},
        "partition": {"name": "iid", "num_clients": 16, "min_client_size": BATCH},
        "model": {"name": "assembled", "dtype": "bfloat16", "max_length": 128, "assembled": assembled},
        "lora": {"rank": 8, "alpha": 16.0, "train_projector": True},
        "train": {"local_steps": STEPS, "batch_size": BATCH, "lr": 1e-4, "engine": config.engine},
        "federation": {"rounds": ROUNDS, "clients_per_round": PER_ROUND, "checkpoint_every": 0},
        "eval": {"every": 0, "at_start": False, "option_scores": False, "max_new_tokens": 4},
        "resources": {"actors": config.actors, "actors_per_client": config.actors_per_client,
                      "cpus_per_actor": 1, "gpus_per_actor": config.gpus_per_actor, "cap_gpu_memory": True},
    }


# -- weights ----------------------------------------------------------------------------------------------
def assembled_paths(standin_dir: Path) -> tuple[dict[str, Any], str]:
    """``model.assembled`` settings and a note: the real assets if present, else a random stand-in."""
    from fedray.errors import ModelError
    from fedray.models.assets import language_model_path, vision_weights_path

    try:
        language_model_path(None), vision_weights_path(None)
        return {}, "real weights from $FEDRAY_ASSETS"
    except ModelError as exc:
        reason = str(exc).split(";")[0]
    lm, vision = write_standin(standin_dir)
    return ({"language_model": str(lm), "vision_weights": str(vision)},
            f"RANDOM WEIGHTS (same architecture; real assets missing: {reason}): timings and memory are "
            f"the architecture's, losses and accuracies mean nothing")


def write_standin(root: Path) -> tuple[Path, Path]:
    """SmolLM2-135M-shaped random Llama + tokenizer, and a random EfficientNet-Lite0 .pth (kept if there)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from fedray.models.assembled_processor import IMAGE_PLACEHOLDER
    from fedray.models.assets import VISION_FILE
    from fedray.models.efficientnet_lite import EfficientNetLite0, lukemelas_key
    from fedray.models.tokenizer import build_tiny_tokenizer
    from fedray.seeding import torch_seeded

    lm, vision = root / "SmolLM2-135M-random", root / VISION_FILE
    if (lm / "config.json").is_file() and vision.is_file():
        return lm, vision
    tokenizer = build_tiny_tokenizer()
    tokenizer.add_tokens([IMAGE_PLACEHOLDER, "<|im_start|>", "<|im_end|>"], special_tokens=True)
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.chat_template = CHATML
    config = LlamaConfig(**SMOLLM2_135M, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    with torch_seeded(0):
        LlamaForCausalLM(config).save_pretrained(lm)
        state = EfficientNetLite0().state_dict()
    tokenizer.save_pretrained(lm)
    torch.save({lukemelas_key(k): v for k, v in state.items()}, vision)
    return lm, vision


# -- measuring ----------------------------------------------------------------------------------------------
class GpuMemorySampler(BackgroundSampler):
    """Peak GPU memory per process from ``nvidia-smi`` (every 0.5 s), keyed by the process's role."""

    interval_s = 0.5

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self.roles: dict[int, str] = {}
        super().__init__()

    def sample(self) -> bool | None:
        import psutil

        try:
            query = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                    "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                   timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False  # no nvidia-smi: the allocator's peaks still come from the run's history
        for line in query.stdout.splitlines():
            pid_text, _, mib = line.partition(",")
            if not pid_text.strip().isdigit() or not mib.strip().isdigit():
                continue
            pid = int(pid_text)
            self.peaks[pid] = max(self.peaks.get(pid, 0.0), float(mib))
            try:
                self.roles[pid] = process_roles(psutil.Process(pid).cmdline(), False)[0]
            except psutil.Error:
                self.roles.setdefault(pid, "?")
        return None

    def per_actor(self) -> list[float]:
        return sorted((v for pid, v in self.peaks.items() if self.roles.get(pid) == "actor:ClientActor"),
                      reverse=True)


def run_config(config: Config, path: Path, out: Path, timeout_s: float) -> dict[str, Any]:
    """Run one configuration's scenario as ``fedray run`` and summarise it."""
    from fedray.bench.runner import BenchError, measure_engine

    case_dir = out / config.name
    try:
        with GpuMemorySampler() as gpu:
            engine = measure_engine(path, case_dir, timeout_s)
    except BenchError as exc:
        return {"config": config.name, "status": f"FAILED: {str(exc).splitlines()[0]}"}
    samples = PER_ROUND * STEPS * BATCH
    return {"config": config.name, "status": "ok", "samples_per_s": samples / engine["s_per_round"],
            "s_per_round": engine["s_per_round"], "s_per_step": engine["compute_s"] / (PER_ROUND * STEPS),
            "actor_alloc_peak_mib": engine["history_memory_mb"]["actor_peak"],
            "actor_smi_peak_mib": gpu.per_actor(), "startup_s": engine["startup_s"],
            "cpu_rss_tree_gib": engine["memory"]["peak_rss_mb"] / 1024}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| config | samples/s | s/step | s/round | start-up s | actor peak MiB (allocator) | "
             "actor peak MiB (nvidia-smi, each) | CPU RSS GiB | status |", "|" + "---|" * 9]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['config']} | - | - | - | - | - | - | - | {r['status']} |")
            continue
        smi = ", ".join(f"{v:.0f}" for v in r["actor_smi_peak_mib"]) or "n/a"
        lines.append(f"| {r['config']} | {r['samples_per_s']:.1f} | {r['s_per_step']:.3f} | "
                     f"{r['s_per_round']:.2f} | {r['startup_s']:.1f} | {r['actor_alloc_peak_mib']:.0f} | "
                     f"{smi} | {r['cpu_rss_tree_gib']:.2f} | ok |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="validate every scenario; run nothing")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs to plan for (default: torch's count)")
    parser.add_argument("--out", default=None, help="output directory (default: a new temporary one)")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for all runs (default 450)")
    parser.add_argument("--only", default=None, help="comma-separated configuration names")
    args = parser.parse_args(argv)
    # gpu_check.sh's hard stop sends SIGTERM: exit through the runner, which stops the run in flight.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    import fedray.checks  # noqa: F401  (plug-in checks, as fedray validate runs them)
    from fedray.config.load import load_scenario

    gpus = args.gpus if args.gpus is not None else _cuda_count()
    out = Path(args.out or tempfile.mkdtemp(prefix="fedray-gpu-check-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    configs = [c for c in configurations(max(gpus, 1))
               if not args.only or c.name in args.only.split(",")]
    if args.dry_run:  # the stand-in's 540 MB are only written for a real run
        assembled, note = {"language_model": str(out / "standin"), "vision_weights": str(out / "x.pth")}, \
            "not loaded (--dry-run)"
    else:
        assembled, note = assembled_paths(out / "standin-assets")
    print(f"gpu_check: planned for {gpus} GPU(s); model: {note}", flush=True)
    paths = {}
    for config in configs:
        paths[config.name] = out / f"{config.name}.yaml"
        paths[config.name].write_text(dump_yaml(scenario(config, assembled)), encoding="utf-8")
        load_scenario(paths[config.name])  # every problem at once, as `fedray validate` reports them
        print(f"ok: {paths[config.name]} is valid", flush=True)
    if args.dry_run:
        print(f"gpu_check --dry-run: {len(configs)} scenarios valid; nothing run")
        return 0
    deadline, rows = time.time() + args.budget, []
    for config in configs:
        left = deadline - time.time()
        if left < 45:
            rows.append({"config": config.name, "status": f"skipped: {args.budget:.0f} s budget spent"})
            continue
        print(f"{config.name}: running ...", flush=True)
        rows.append(run_config(config, paths[config.name], out, left))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(f"\nmodel: {note}\n\n{table(rows)}")
    (out / "gpu_check.json").write_text(json.dumps({"note": note, "rows": rows}, indent=2), encoding="utf-8")
    print(f"\nwritten: {out / 'gpu_check.json'}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count()


if __name__ == "__main__":
    raise SystemExit(main())
