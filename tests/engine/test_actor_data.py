"""The client actor's data path: fits and evaluations from prepared samples equal those of the uncached
tower (``model.cache_vision_features: false``), and a second actor maps the files the first one built."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedray.client.objectives import LocalObjective
from fedray.config import scenario_from_dict
from fedray.data.manifest import ClientSpec, train_needs
from fedray.data.modality import BOTH, IMAGE, TEXT
from fedray.data.sources import read_source
from fedray.engine.actors import ClientActor
from fedray.engine.client_setup import ClientSetup
from fedray.engine.tasks import EvalRequest, FitTask
from fedray.models.features import StandIn

MASKS = (BOTH, IMAGE, TEXT, IMAGE) * 3


def _actor(cache_vision_features: bool) -> ClientActor:
    s = scenario_from_dict({
        "name": "actor-data", "seed": 2,
        "model": {"max_length": 200, "cache_vision_features": cache_vision_features,
                  "tiny": {"text_layers": 1, "vision_layers": 1}},
        "lora": {"rank": 2, "train_projector": True},
        "train": {"local_steps": 3, "batch_size": 4, "lr": 1e-2},
    })
    table = read_source("glyphs", {"max_per_class": 3}).splits["train"]  # 12 rows with options
    return ClientActor(ClientSetup.from_scenario(s), table, {"test": table})


@pytest.fixture(scope="module")
def actors(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEDRAY_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield _actor(True), _actor(False)


def test_the_switch_decides_whether_the_tower_is_cached(actors):
    cached, uncached = actors
    assert isinstance(cached.model.get_base_model().model.vision_tower, StandIn)
    assert not isinstance(uncached.model.get_base_model().model.vision_tower, StandIn)
    assert cached.describe()["total_params"] == uncached.describe()["total_params"]


def test_fit_and_evaluation_equal_those_of_the_uncached_tower(actors):
    cached, uncached = actors
    task = FitTask(server_round=1, client_id=0, indices=np.arange(12), masks=MASKS,
                   objective=LocalObjective(), seed=7)
    start = cached.initial_adapter()
    report, params = cached.fit(task, start)
    expected_report, expected = uncached.fit(task, start)
    assert report.metrics == expected_report.metrics
    assert all(torch.equal(params[k], expected[k]) for k in expected)
    request = EvalRequest("test", tuple(range(3, 9)), "image_only", score_options=True)
    shard, expected_shard = cached.evaluate(params, request), uncached.evaluate(params, request)
    assert shard == expected_shard and len(shard.generations) == 6


def test_declared_needs_are_built_once_and_mapped_by_the_next_actor(actors, tmp_path):
    cached, _ = actors
    specs = [ClientSpec(0, tuple(range(12)), "t", masks=MASKS)]
    first = cached.set_data(cached.train, cached.eval_tables, train_needs(specs), str(tmp_path))
    again = cached.set_data(cached.train, cached.eval_tables, train_needs(specs), str(tmp_path))
    # 3 masks: a prepared file each, and a features file for the two with images
    assert first["files_built"] == 5 and first["vision_features"]
    assert again["files_built"] == 0 and again["files_mapped"] == 5


def test_the_task_s_round_lr_replaces_train_lr(actors):
    # train.round_schedule reaches the fit as FitTask.lr: a fit at the configured lr (1e-2) moves the
    # adapter; the same fit at lr 1e-12 leaves it (almost) where it started.
    actor = actors[0]
    start = actor.initial_adapter()
    task = FitTask(server_round=1, client_id=0, indices=np.arange(12), masks=MASKS,
                   objective=LocalObjective(), seed=7)
    _, default = actor.fit(task, start)
    _, tiny = actor.fit(FitTask(**{**task.__dict__, "lr": 1e-12}), start)
    moved = max(float((default[k] - start[k]).abs().max()) for k in start)
    barely = max(float((tiny[k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-4 and barely < 1e-9
