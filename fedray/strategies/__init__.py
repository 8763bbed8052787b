"""Server-side aggregation strategies (pure tensor math; no Ray, no devices, no files)."""

from fedray.registry import import_submodules
from fedray.strategies.base import ClientFailure, ClientResult, Strategy, filter_finite, usable_results
from fedray.strategies.dp import DPFixedClip
from fedray.strategies.fedavg import FedAvg
from fedray.strategies.fedavgm import FedAvgM
from fedray.strategies.fedopt import FedAdagrad, FedAdam, FedOpt, FedYogi
from fedray.strategies.registry import STRATEGIES, build_strategy
from fedray.strategies.robust import FedMedian, FedTrimmedAvg, Krum
from fedray.strategies.scaffold import Scaffold
from fedray.strategies.updates import pseudo_gradient, weighted_mean

__all__ = ["STRATEGIES", "ClientFailure", "ClientResult", "DPFixedClip", "FedAdagrad", "FedAdam", "FedAvg",
           "FedAvgM", "FedMedian", "FedOpt", "FedTrimmedAvg", "FedYogi", "Krum", "Scaffold", "Strategy",
           "build_strategy", "filter_finite", "pseudo_gradient", "usable_results", "weighted_mean"]

import_submodules(__name__)  # each file registers its rules: a new rule is one new file
