"""Server-side aggregation strategies (pure tensor math; no Ray, no devices, no files)."""

from fedray.strategies import fedavg  # noqa: F401  (registers)
from fedray.strategies.base import ClientFailure, ClientResult, Strategy, weighted_mean
from fedray.strategies.registry import STRATEGIES, accepted_params, build_strategy, param_problems

__all__ = ["STRATEGIES", "ClientFailure", "ClientResult", "Strategy", "accepted_params",
           "build_strategy", "param_problems", "weighted_mean"]
