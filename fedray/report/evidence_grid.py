"""The evidence grids: which scenarios, methods and seeds ``fedray evidence run`` runs, and where.

A *cell* is one run: a scenario file of ``scenarios/evidence/`` (written by ``scenarios/grid.py``), a
method (the overrides that make it) and a seed (``seed=<k>``, which redraws the data split, the
partition, the modality assignment, the adapter's initial weights and the batch order). Its run directory
is ``<out>/<scenario>/<method>/seed<k>``, so a stopped grid resumes where it stopped.

Methods are named as the report names them (:func:`fedray.report.tables.method_of`). The adaptive
regularization of FedMLLM puts its proximal term on the middle language-model layers and leaves
``skip_layers`` free at each end; the tiny model has 2 layers, so the window is all of them
(``skip_layers: 0``) and the coefficient μ·weight = 0.01 is the reference's μ with weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from fedray.errors import FedRayError

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "evidence"

#: Report name → the overrides that turn a scenario (FedAvg, federated) into that method.
METHODS: dict[str, tuple[str, ...]] = {
    "zero_shot": ("mode=zero_shot",),
    "local": ("mode=local",),
    "centralized": ("mode=centralized",),
    "fedavg": (),
    "fedavg+fedprox": ("objective.name=fedprox", "objective.mu=0.01"),
    "fedadagrad-fedmllm": ("strategy.name=fedadagrad", "strategy.variant=fedmllm"),
    "fedadagrad-fedmllm+adaptive_prox": ("strategy.name=fedadagrad", "strategy.variant=fedmllm",
                                         "objective.name=adaptive_prox", "objective.skip_layers=0",
                                         "objective.weight=1.0"),
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
class Grid:
    """Scenarios × methods × seeds under one budget (overrides applied to every run)."""

    name: str
    scenarios: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: tuple[str, ...] = ()
    description: str = ""

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

        return replace(self, scenarios=pick(scenarios, self.scenarios, str, "scenarios"),
                       methods=pick(methods, self.methods, str, "methods"),
                       seeds=pick(seeds, self.seeds, int, "seeds"))

    def cells(self) -> list[Cell]:
        """Every run, seed-major (a stopped grid has whole seeds done first), then scenario, method."""
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise FedRayError(f"grid {self.name!r}: unknown methods {unknown}; known: {sorted(METHODS)}")
        return [Cell(scenario, method, seed, (*self.budget, *METHODS[method], f"seed={seed}"))
                for seed in self.seeds for scenario in self.scenarios for method in self.methods]


_ALL_METHODS = tuple(METHODS)
_PLAIN_AND_AUG = tuple(s for c in CONDITIONS for s in (c, f"{c}-aug"))

GRIDS: dict[str, Grid] = {
    "reduced": Grid(
        name="reduced",
        scenarios=("aligned-a0.5", "missing-b0.5", "missing-b0.5-aug"),
        methods=("zero_shot", "local", "centralized", "fedavg", "fedadagrad-fedmllm+adaptive_prox"),
        seeds=(0, 1, 2),
        budget=("federation.rounds=10", "eval.every=5", "eval.at_start=false"),
        description="3 scenarios × 5 methods × 3 seeds, 10 rounds of 4 clients × 10 local steps"),
    "full": Grid(
        name="full",
        scenarios=_PLAIN_AND_AUG,
        methods=_ALL_METHODS,
        seeds=(0, 1, 2),
        budget=("federation.rounds=20", "eval.every=5", "eval.at_start=false"),
        description="24 scenarios (12 conditions, plain and augmented) × 7 methods × 3 seeds, 20 rounds"),
    "smoke": Grid(
        name="smoke",
        scenarios=("missing-b0.5",),
        methods=("local", "fedavg"),
        seeds=(0, 1),
        budget=("federation.rounds=2", "eval.every=1", "eval.at_start=false", "train.local_steps=2",
                "data.max_test_samples=64"),
        description="the pipeline end to end in a few minutes: 1 scenario × 2 methods × 2 seeds, 2 rounds"),
}


def get_grid(name: str) -> Grid:
    if name not in GRIDS:
        raise FedRayError(f"unknown evidence grid {name!r}; choose from {sorted(GRIDS)}")
    return GRIDS[name]
