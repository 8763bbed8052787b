"""The evidence grids: which scenarios, methods and seeds ``fedray evidence run`` runs, and where.

A *cell* is one run: a scenario file of ``scenarios/evidence/`` (written by ``scenarios/grid.py``), a
method (the overrides that make it) and a seed (``seed=<k>``, which redraws the data split, the
partition, the modality assignment, the adapter's initial weights and the batch order). Its run directory
is ``<out>/<scenario>/<method>/seed<k>``, so a stopped grid resumes where it stopped.

Methods are named as the report names them (:func:`fedray.report.tables.method_of`). The adaptive
regularization of FedMLLM puts its proximal term on the middle language-model layers and leaves
``skip_layers`` free at each end; the tiny model has 2 layers, so the window is all of them
(``skip_layers: 0``) and the coefficient μ·weight = 0.01 is the reference's μ with weight 1.

FedAdagrad's server step (fedmllm variant: v₀ = τ², v ← v + Δ², no momentum, no bias correction) is
η·Δ/(√v + τ). While |Δ| ≪ τ that is (η/2τ)·Δ, FedAvg's step scaled by η/2τ; while |Δ| ≫ τ it is about
η·sign(Δ) per weight, whatever Δ's size. With τ = 1e-3 a LoRA weight's round change is mostly above τ,
so every weight moves by ≈ η, the noisy ones too, and the weights that barely change get their change
blown up by η/2τ. A sweep on aligned α=0.5, seed 0, 20 rounds (docs/results.md, "FedAdagrad's server
step"): with τ = 1e-3, η = 1e-3, 0.01, 0.1 and 0.3 learn nothing (train loss 3.7, 0.78, 1.9, diverged)
and η = 0.03 reaches loss 0.10 but accuracy 0.359; η = 0.02, τ = 0.01 ends at loss 0.30, accuracy
0.256; η = 0.06, τ = 0.03 (η/2τ = 1: FedAvg's step at first, shrinking as v grows) at loss 0.05,
accuracy 0.666 with no invalid answers, near FedAvg's 0.766. The grids use η = 0.06, τ = 0.03.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from fedray.errors import FedRayError

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "evidence"

#: FedMLLM's adaptive regularization on the tiny model (2 layers: skip none), μ·weight = 0.01.
_ADAPTIVE_PROX = ("objective.name=adaptive_prox", "objective.skip_layers=0", "objective.weight=1.0")
#: FedAdagrad, the fedmllm variant, with the server step the sweep picked (see the module docstring).
_FEDADAGRAD = ("strategy.name=fedadagrad", "strategy.variant=fedmllm", "strategy.eta=0.06",
               "strategy.tau=0.03")

#: Report name → the overrides that turn a scenario (FedAvg, federated) into that method.
METHODS: dict[str, tuple[str, ...]] = {
    "zero_shot": ("mode=zero_shot",),
    "local": ("mode=local",),
    "centralized": ("mode=centralized",),
    "fedavg": (),
    "fedavg+fedprox": ("objective.name=fedprox", "objective.mu=0.01"),
    "fedavg+adaptive_prox": _ADAPTIVE_PROX,
    "fedadagrad-fedmllm": _FEDADAGRAD,
    "fedadagrad-fedmllm+adaptive_prox": (*_FEDADAGRAD, *_ADAPTIVE_PROX),
}

CONDITIONS = ("aligned-a5", "aligned-a1", "aligned-a0.5", "missing-b0.3", "missing-b0.4", "missing-b0.5",
              "cross-k3", "cross-k5", "cross-k7", "hybrid-q0.2", "hybrid-q0.3", "hybrid-q0.4")


@dataclass(frozen=True)
class Cell:
    """One run of a grid."""

    scenario: str  # file stem under scenarios/evidence/
    method: str
    seed: int
    overrides: tuple[str, ...]  # the grid's budget, then the method's, then the seed

    def scenario_file(self, root: Path = SCENARIO_DIR) -> Path:
        return root / f"{self.scenario}.yaml"

    def run_dir(self, out: Path) -> Path:
        return Path(out) / self.scenario / self.method / f"seed{self.seed}"

    def command(self) -> str:
        """The equivalent ``fedray run`` line (for the docs and the log)."""
        return " ".join(["fedray run", f"scenarios/evidence/{self.scenario}.yaml", *self.overrides])


@dataclass(frozen=True)
class Block:
    """Scenarios × methods: a grid is one or more blocks, so a cheap grid runs a method only where a
    claim needs it."""

    scenarios: tuple[str, ...]
    methods: tuple[str, ...]


@dataclass(frozen=True)
class Grid:
    """Blocks (scenarios × methods) × seeds under one budget (overrides applied to every run)."""

    name: str
    blocks: tuple[Block, ...]
    seeds: tuple[int, ...]
    budget: tuple[str, ...] = ()
    description: str = ""

    @property
    def scenarios(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for b in self.blocks for s in b.scenarios))

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for b in self.blocks for m in b.methods))

    def subset(self, scenarios: str | None = None, methods: str | None = None,
               seeds: str | None = None) -> Grid:
        """The grid restricted to comma-separated subsets (None: all); asking for more is an error."""
        def pick(given: str | None, have: tuple, cast: type, what: str) -> tuple:
            if given is None:
                return have
            wanted = tuple(cast(x.strip()) for x in given.split(",") if x.strip())
            extra = [w for w in wanted if w not in have]
            if extra:
                raise FedRayError(f"grid {self.name!r} has no {what} {extra}; it has {list(have)}")
            return wanted

        keep_s = pick(scenarios, self.scenarios, str, "scenarios")
        keep_m = pick(methods, self.methods, str, "methods")
        blocks = tuple(Block(tuple(s for s in b.scenarios if s in keep_s),
                             tuple(m for m in b.methods if m in keep_m)) for b in self.blocks)
        return replace(self, blocks=tuple(b for b in blocks if b.scenarios and b.methods),
                       seeds=pick(seeds, self.seeds, int, "seeds"))

    def cells(self) -> list[Cell]:
        """Every run, seed-major (a stopped grid has whole seeds done first), then block order."""
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise FedRayError(f"grid {self.name!r}: unknown methods {unknown}; known: {sorted(METHODS)}")
        return [Cell(scenario, method, seed, (*self.budget, *METHODS[method], f"seed={seed}"))
                for seed in self.seeds for block in self.blocks
                for scenario in block.scenarios for method in block.methods]


_PLAIN_AND_AUG = tuple(s for c in CONDITIONS for s in (c, f"{c}-aug"))
# The reduced grid pairs adaptive regularization with FedAvg: FedAdagrad (fedmllm, η = 0.01) alone stalls
# at train loss ≈ 0.78 on this model in 20 rounds (every answer invalid on two of three seeds), which would
# confound the regularization's effect with the server optimiser's (docs/results.md). The full grid
# keeps the paper's FedAdagrad + adaptive regularization.
_FEDAVG_ADAPTIVE = "fedavg+adaptive_prox"

# Rounds: the plateau grid's FedAvg runs (60 rounds, evaluated every 5, seeds 0-2; docs/results.md, 2e)
# report, at the validation-picked round, a seed mean of 0.697 / 0.868 / 0.927 (aligned α=0.5) and
# 0.468 / 0.671 / 0.827 (missing β=0.5) when stopped at 20 / 40 / 60 rounds: still rising at 60, while
# local (0.505 from 40) and centralized (0.934 from 40) are flat. So the full grid runs 60 rounds; the
# reduced grid stays at 20 to fit its 30 minutes and compares federated models still on their way up.
GRIDS: dict[str, Grid] = {
    "reduced": Grid(
        name="reduced",
        blocks=(Block(("aligned-a0.5",), ("zero_shot", "local", "centralized", "fedavg")),
                Block(("missing-b0.5",), ("fedavg", _FEDAVG_ADAPTIVE)),
                Block(("missing-b0.5-aug",), ("fedavg",)),
                Block(("cross-k5", "hybrid-q0.4"), ("fedavg",))),
        seeds=(0, 1, 2),
        budget=("federation.rounds=20", "eval.every=10", "eval.at_start=false"),
        description="9 runs × 3 seeds: aligned α=0.5 under zero-shot, local, centralized and FedAvg; "
                    "missing β=0.5 under FedAvg with and without adaptive regularization, and augmented; "
                    "cross-modal k=5 and hybrid q=0.4 under FedAvg; 20 rounds"),
    "full": Grid(
        name="full",
        blocks=(Block(_PLAIN_AND_AUG, tuple(METHODS)),),
        seeds=(0, 1, 2),
        budget=("federation.rounds=60", "eval.every=5", "eval.at_start=false"),
        description="24 scenarios (12 conditions, plain and augmented) × 7 methods × 3 seeds, 60 rounds"),
    # How many rounds the curves need to flatten (docs/results.md, "Rounds"): FedAvg on aligned and missing,
    # and the two baselines whose curves bound it, at the grids' per-round budget, evaluated every 5 rounds.
    "plateau": Grid(
        name="plateau",
        blocks=(Block(("aligned-a0.5", "missing-b0.5"), ("fedavg",)),
                Block(("aligned-a0.5",), ("local", "centralized"))),
        seeds=(0, 1, 2),
        budget=("federation.rounds=60", "eval.every=5", "eval.at_start=false"),
        description="aligned α=0.5 under FedAvg, local and centralized, missing β=0.5 under FedAvg; "
                    "60 rounds evaluated every 5 (fedray evidence report --train-loss draws the curves)"),
    "smoke": Grid(
        name="smoke",
        blocks=(Block(("missing-b0.5",), ("local", "fedavg")),),
        seeds=(0, 1),
        budget=("federation.rounds=2", "eval.every=1", "eval.at_start=false", "train.local_steps=2",
                "data.max_test_samples=64"),
        description="the pipeline end to end in a few minutes: 1 scenario × 2 methods × 2 seeds, 2 rounds"),
}


def get_grid(name: str) -> Grid:
    if name not in GRIDS:
        raise FedRayError(f"unknown evidence grid {name!r}; choose from {sorted(GRIDS)}")
    return GRIDS[name]
