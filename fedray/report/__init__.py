"""Reports over run directories: the paper table, curves, communication, fairness; TensorBoard logging."""

from fedray.report.tables import RunInfo, find_runs, load_run, method_of, scenario_of
from fedray.report.tensorboard import TensorBoardLogger

__all__ = ["RunInfo", "TensorBoardLogger", "find_runs", "load_run", "method_of", "scenario_of"]
