"""fedray: simulate federated LoRA fine-tuning of multimodal LLMs on Ray.

Public API::

    from fedray import load_scenario, run
    summary = run(load_scenario("scenarios/mini.yaml", ["federation.rounds=5"]))

Importing the package stays light: every Ray worker imports ``fedray`` to unpickle what it is sent, and
the aggregator must not pay for the model code, the data sources or the trainers because the package
pulled them in. So the public names are imported on first use, and the registry-aware scenario checks
(:mod:`fedray.checks`, which imports every plug-in registry) are registered as one check that imports
them when the first scenario is checked.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fedray.config.load import SEMANTIC_CHECKS, register_semantic_check

if TYPE_CHECKING:
    from fedray.config import Scenario, load_scenario, scenario_from_dict
    from fedray.config.schema import Scenario as _Scenario
    from fedray.engine.simulation import RunSummary, Simulation, run
    from fedray.errors import FedRayError

__version__ = "0.1.0"

#: Public name → the module that defines it.
_PUBLIC = {"FedRayError": "fedray.errors", "RunSummary": "fedray.engine.summary",
           "Scenario": "fedray.config", "Simulation": "fedray.engine.simulation",
           "load_scenario": "fedray.config", "run": "fedray.engine.simulation",
           "scenario_from_dict": "fedray.config"}

__all__ = ["FedRayError", "RunSummary", "Scenario", "Simulation", "__version__", "load_scenario",
           "run", "scenario_from_dict"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'fedray' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


_registry_checks_found: list | None = None


@register_semantic_check
def _registry_checks(scenario: _Scenario) -> list[str]:
    """Run :mod:`fedray.checks`' checks, importing that module on the first scenario checked.

    Its checks register themselves with the loader when it is imported; the ones that arrive during
    this call are taken off the loader's list and run here instead, once, in the order they registered
    (where the module was imported earlier, they stay on the list and this check finds none).
    """
    global _registry_checks_found
    if _registry_checks_found is None:
        before = list(SEMANTIC_CHECKS)
        importlib.import_module("fedray.checks")
        _registry_checks_found = [check for check in SEMANTIC_CHECKS if check not in before]
        for check in _registry_checks_found:
            SEMANTIC_CHECKS.remove(check)
    return [problem for check in _registry_checks_found for problem in check(scenario)]
