"""fedray: simulate federated LoRA fine-tuning of multimodal LLMs on Ray.

Public API::

    from fedray import load_scenario, run
    summary = run(load_scenario("scenarios/mini.yaml", ["federation.rounds=5"]))
"""

from fedray import checks  # noqa: F401  (registers the registry-aware scenario checks)
from fedray.config import Scenario, load_scenario, scenario_from_dict
from fedray.engine.simulation import RunSummary, Simulation, run
from fedray.errors import FedRayError

__version__ = "0.1.0"

__all__ = ["FedRayError", "RunSummary", "Scenario", "Simulation", "__version__", "load_scenario",
           "run", "scenario_from_dict"]
