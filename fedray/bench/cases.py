"""The benchmark cases: fixed workloads that a reader can compare across machines and versions.

Each case is one complete scenario (written to YAML and run as ``python -m fedray run``), so the figures are
those of a user's run. Every case trains the same tiny LLaVA (CLIP vision tower 64 wide, 2 layers, 4 heads,
32 px images in 8 px patches; Llama language model 128 wide, 256 intermediate, 2 layers, 4 heads, 2 KV
heads) with LoRA r8/α16 on the language model's ``q_proj`` and ``v_proj`` plus the trained projector,
FedAvg, AdamW at lr 1e-3 on batches of 8, two client actors of one CPU each, and no evaluation except the
final one, which a run cannot turn off and which the timings leave out.

- ``reference``: digits, 10 clients, Dirichlet α=0.5, 5 per round, 20 local steps, 10 rounds.
- ``overhead``: digits, 100 clients, Dirichlet α=100, 50 per round, 1 local step: per-fit fixed costs.
- ``scale``: 10,000 clients, 50 per round, 1 local step: memory must not grow with the client count.
  Digits has 1,797 rows and a client needs at least one, so this case uses the offline ``glyphs`` source
  rendered to 10,240 rows (4 scripts × 2,560), 1 % held out, split IID (a Dirichlet split cannot give
  10,000 clients a row each from 10,138): each client holds one or two rows, so its batch is that small.
- ``scale-control``: ``scale``'s data and settings with 100 clients, so that a memory difference between
  the two comes from the number of clients alone (``overhead`` differs from ``scale`` in data too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from fedray.config.schema import Scenario
from fedray.registry import Registry

#: The tiny model of every case, spelled out so that a change of the schema's defaults cannot move it.
TINY_MODEL: dict[str, Any] = {
    "name": "tiny-vlm",
    "tiny": {"image_size": 32, "patch_size": 8, "vision_hidden_size": 64, "vision_layers": 2,
             "vision_heads": 4, "text_hidden_size": 128, "text_layers": 2, "text_heads": 4,
             "text_kv_heads": 2},
}
#: LoRA on the language model's q_proj and v_proj only (the family preset would add k_proj and o_proj).
LORA: dict[str, Any] = {"rank": 8, "alpha": 16.0, "target_modules": r".*language_model.*\.(q_proj|v_proj)",
                        "train_projector": True}
DIGITS: dict[str, Any] = {"source": "digits", "test_fraction": 0.05, "max_test_samples": 16}
# 4 scripts × 2,560 renderings = 10,240 rows (Hebrew, the smallest script, has 74 letters: 74 × 35 ≥ 2,560).
GLYPHS: dict[str, Any] = {"source": "glyphs", "test_fraction": 0.01, "max_test_samples": 16,
                          "options": {"samples_per_char": 35, "max_per_class": 2560}}
BATCH_SIZE = 8


@dataclass(frozen=True)
class Case:
    """One benchmark workload: the parts that differ between cases; the rest is common (module doc)."""

    name: str
    data: Mapping[str, Any]
    partition: Mapping[str, Any]
    clients_per_round: int
    local_steps: int
    rounds: int = 10
    actors: int = 2

    @property
    def num_clients(self) -> int:
        return int(self.partition["num_clients"])

    @property
    def waves(self) -> int:
        """Fits per actor per round when the cohort is spread evenly: ⌈cohort / actors⌉."""
        return math.ceil(self.clients_per_round / self.actors)


CASES: Registry[Case] = Registry("bench case")
CASES.register("reference")(Case(
    "reference", DIGITS, {"name": "dirichlet", "num_clients": 10, "alpha": 0.5,
                          "min_client_size": BATCH_SIZE},
    clients_per_round=5, local_steps=20))
CASES.register("overhead")(Case(
    "overhead", DIGITS, {"name": "dirichlet", "num_clients": 100, "alpha": 100.0,
                         "min_client_size": BATCH_SIZE},
    clients_per_round=50, local_steps=1))
CASES.register("scale")(Case(
    "scale", GLYPHS, {"name": "iid", "num_clients": 10_000, "min_client_size": 1},
    clients_per_round=50, local_steps=1))
CASES.register("scale-control")(Case(
    "scale-control", GLYPHS, {"name": "iid", "num_clients": 100, "min_client_size": 1},
    clients_per_round=50, local_steps=1))

#: What ``fedray bench`` runs without ``--cases``.
DEFAULT_CASES: tuple[str, ...] = ("reference", "overhead", "scale")


def quick(case: Case) -> Case:
    """A smoke-test version of ``case``: two rounds of one local step (round 2 is the one timed)."""
    return replace(case, rounds=2, local_steps=1)


def case_scenario_dict(case: Case, seed: int = 0) -> dict[str, Any]:
    """The scenario of ``case`` as the mapping its YAML file holds."""
    return {
        "name": f"bench-{case.name}",
        "description": f"fedray bench case {case.name!r} (see fedray/bench/cases.py)",
        "seed": seed,
        "data": dict(case.data),
        "partition": dict(case.partition),
        "model": TINY_MODEL,
        "lora": LORA,
        "train": {"local_steps": case.local_steps, "batch_size": BATCH_SIZE, "optimizer": "adamw",
                  "lr": 1e-3},
        "strategy": {"name": "fedavg"},
        "federation": {"rounds": case.rounds, "clients_per_round": case.clients_per_round,
                       "checkpoint_every": 0},
        # eval.every 0 evaluates once, after the last round; that evaluation cannot be switched off.
        "eval": {"every": 0, "at_start": False, "option_scores": False},
        "resources": {"actors": case.actors, "cpus_per_actor": 1},
    }


def case_scenario(case: Case, seed: int = 0) -> Scenario:
    """The validated scenario of ``case`` (every loader check, plug-in checks included)."""
    import fedray.checks  # noqa: F401  (registers the registry-aware checks)
    from fedray.config.load import scenario_from_dict

    return scenario_from_dict(case_scenario_dict(case, seed), source=f"bench case {case.name}")


def select_cases(names: str | None, quick_mode: bool = False) -> list[Case]:
    """The cases named in a comma-separated list (default :data:`DEFAULT_CASES`), smoke versions if asked."""
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else list(DEFAULT_CASES)
    cases = [CASES.get(name) for name in wanted]  # an unknown name lists the known ones
    return [quick(c) for c in cases] if quick_mode else cases
