"""Hyperparameter sweeps: ``tune_spaces/*.yaml`` (space.py) run as Ray Tune trials (trainable.py)."""

from fedray.tune.space import Dimension, SweepConfig, TuneSpace, load_space, space_from_dict

__all__ = ["Dimension", "SweepConfig", "TuneSpace", "load_space", "space_from_dict"]
