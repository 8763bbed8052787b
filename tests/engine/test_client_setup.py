"""The client set-up: what a client actor is built from, taken once from the scenario."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from fedray.config import scenario_from_dict
from fedray.engine.client_setup import ClientSetup
from fedray.engine.modes import build_run_mode


def test_setup_carries_the_sections_the_actor_reads():
    s = scenario_from_dict({"seed": 9, "modality": {"agnostic_prompt": True},
                            "resources": {"cpus_per_actor": 2.5, "gpus_per_actor": 0.5,
                                          "cap_gpu_memory": False}})
    setup = ClientSetup.from_scenario(s)
    assert (setup.seed, setup.model, setup.lora, setup.train, setup.eval) == \
        (9, s.model, s.lora, s.train, s.eval)
    assert setup.agnostic_prompt and setup.torch_threads == 2  # whole CPUs of the actor
    assert setup.gpus_per_actor == 0.5 and setup.cap_gpu_memory is False
    assert pickle.loads(pickle.dumps(setup)) == setup  # shipped to every actor
    with pytest.raises(dataclasses.FrozenInstanceError):
        setup.seed = 1  # type: ignore[misc]


def test_explicit_threads_and_the_run_modes_budget_win():
    s = scenario_from_dict({"mode": "centralized", "train": {"local_steps": 3},
                            "federation": {"clients_per_round": 2},
                            "resources": {"cpus_per_actor": 0.25, "torch_threads": 4}})
    assert ClientSetup.from_scenario(s).torch_threads == 4
    no_cpu = scenario_from_dict({"resources": {"cpus_per_actor": 0}})
    assert ClientSetup.from_scenario(no_cpu).torch_threads == 1  # at least one
    budget = ClientSetup.from_scenario(s, train=build_run_mode(s).train_config())
    assert budget.train.local_steps == 6 and s.train.local_steps == 3
