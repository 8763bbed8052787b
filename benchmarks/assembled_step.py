"""Seconds per local step of the assembled model on CPU: the data path before and after prepared samples
and cached encoder features, same settings.

    .venv/bin/python benchmarks/assembled_step.py                  # 6 timed steps per arm, 2 threads
    .venv/bin/python benchmarks/assembled_step.py --steps 10 --threads 1
    .venv/bin/python benchmarks/assembled_step.py --scenario runs/bench/reference/scenario.yaml --steps 20 --threads 1

The model is ``scenarios/offline/assembled-digits.yaml``'s (EfficientNet-Lite0 at 224 px → projector →
SmolLM2-135M-Instruct, LoRA r8 on attention plus the projector, batch 4, ``max_length`` 64), with its
real weights when ``$FEDRAY_ASSETS`` holds them (``make assets-real``), else a random stand-in of the same
architecture (written as ``benchmarks/gpu_check.py`` writes it): speed is the architecture's either way.
``--scenario`` times another scenario's model the same way (e.g. a ``fedray bench`` case's
``scenario.yaml``). One client's fit of ``--steps`` AdamW steps, after one untimed warm-up fit, in this process, per arm:

- ``rows``: every step encodes its samples from the sample rows (PNG decoded, image processed, prompt
  and answer tokenized) and runs the encoder: the data path before prepared samples;
- ``prepared``: samples turned into model inputs once (``fedray.client.prepared``), the encoder still run
  at every step (``model.cache_vision_features: false``);
- ``prepared+features``: prepared samples and the frozen encoder's output computed once per image
  (``model.cache_vision_features: true``, the default).

The three arms train the same batches from the same adapter; the script checks that their losses agree
(the cached encoder is exact; see docs/models.md) and prints seconds per step and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

SCENARIO = REPO / "scenarios" / "offline" / "assembled-digits.yaml"


def build_actor(path: Path, overrides: list[str], cache_features: bool):
    """A client actor (in this process) of the assembled scenario, with the sample tables set."""
    from fedray.config.load import load_scenario
    from fedray.data.federated import build_federated_data
    from fedray.data.manifest import train_needs
    from fedray.engine.actors import ClientActor
    from fedray.engine.client_setup import ClientSetup

    scenario = load_scenario(path, [*overrides, f"model.cache_vision_features={str(cache_features).lower()}"])
    data = build_federated_data(scenario)
    actor = ClientActor(ClientSetup.from_scenario(scenario))
    actor.set_data(data.train, {}, train_needs(data.specs))
    return scenario, data, actor


def fit_seconds(fit, repeats: int = 2) -> tuple[float, float]:
    """(best seconds of ``repeats`` timed calls of ``fit`` after one warm-up, the fit's mean loss)."""
    loss = fit()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        loss = fit()
        best = min(best, time.perf_counter() - start)
    return best, loss


def arms(scenario, data, cached, uncached, steps: int) -> dict[str, tuple[float, float]]:
    """Seconds per fit and mean loss of each arm, for client 0's fit of ``steps`` steps."""
    import numpy as np

    from fedray.client.objectives import LocalObjective
    from fedray.data.modality import mask_rows
    from fedray.engine.tasks import FitTask
    from fedray.seeding import derive_rng, derive_seed

    spec = data.specs[0]
    masks = spec.masks if spec.masks is not None else (3,) * spec.num_samples
    seed = derive_seed(scenario.seed, "fit", 1, 0)
    task = FitTask(server_round=1, client_id=0, indices=np.asarray(spec.indices), masks=masks,
                   objective=LocalObjective(), seed=seed)
    start = uncached.initial_adapter()
    rows = mask_rows(data.train.take(list(spec.indices)).to_pylist(), masks)
    cfg = uncached.setup.train

    def from_rows() -> float:
        uncached.adapter.load(start)
        stats, _ = uncached.engine.fit(uncached.model, uncached.collator, rows, cfg, LocalObjective(), start,
                                       derive_rng(seed, "batches"))
        return stats.mean_loss

    def through(actor):
        return lambda: actor.fit(task, start)[0].metrics["train_loss"]

    return {"rows": fit_seconds(from_rows), "prepared": fit_seconds(through(uncached)),
            "prepared+features": fit_seconds(through(cached))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", type=Path, default=SCENARIO,
                        help="scenario file (default scenarios/offline/assembled-digits.yaml)")
    parser.add_argument("--steps", type=int, default=6, help="local steps per timed fit (default 6)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, as the scenario)")
    args = parser.parse_args(argv)

    import torch

    from gpu_check import assembled_paths

    torch.set_num_threads(args.threads)
    os.environ.setdefault("FEDRAY_CACHE", tempfile.mkdtemp(prefix="fedray-assembled-step-"))
    from fedray.config.load import load_scenario

    overrides, note = [], "its own weights"
    if load_scenario(args.scenario).model.name == "assembled":
        paths, note = assembled_paths(Path(os.environ["FEDRAY_CACHE"]) / "standin")
        overrides = [f"model.assembled.{k}={v}" for k, v in paths.items()]
    overrides += [f"train.local_steps={args.steps}", "resources.cpus_per_actor=" + str(args.threads)]
    scenario, data, uncached = build_actor(args.scenario, overrides, cache_features=False)
    _, _, cached = build_actor(args.scenario, overrides, cache_features=True)
    results = arms(scenario, data, cached, uncached, args.steps)

    base = results["rows"][0] / args.steps
    print(f"{scenario.model.name} model of {args.scenario.name}, {note}; batch {scenario.train.batch_size}, {args.steps} steps per fit, "
          f"{args.threads} torch thread(s)\n")
    print("| data path | s/step | speed-up | mean loss |\n|---|---|---|---|")
    for name, (seconds, loss) in results.items():
        per_step = seconds / args.steps
        print(f"| {name} | {per_step:.4f} | {base / per_step:.2f}× | {loss:.6f} |")
    losses = [loss for _, loss in results.values()]
    if max(losses) - min(losses) > 1e-4 * max(1.0, abs(losses[0])):
        print(f"\nWARNING: the arms' losses differ ({losses}): they did not train the same batches")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
