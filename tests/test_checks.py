"""Registry-aware checks join schema problems in one error."""

import pytest

import fedray  # noqa: F401  (registers the checks)
from fedray.config import scenario_from_dict
from fedray.errors import ConfigError


def test_schema_and_registry_problems_are_reported_together(tmp_path):
    raw = {"train": {"lr": -1}, "strategy": {"name": "fedyogii"}, "model": {"name": "nope"},
           "partition": {"name": "iid", "num_clients": 2}, "federation": {"clients_per_round": 2},
           "data": {"root": str(tmp_path / "missing")}}
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(raw)
    problems = info.value.problems
    assert any(p.startswith("train.lr") for p in problems)
    assert any("unknown strategy 'fedyogii'" in p for p in problems)
    assert any(p.startswith("model.name") and "tiny-vlm" in p for p in problems)
    assert any(p.startswith("data.root") for p in problems)
    assert len(problems) == 4


def test_strategy_parameters_are_checked_against_the_strategy():
    with pytest.raises(ConfigError, match="strategy.momentum: strategy 'fedavg' has no parameter 'momentum'"):
        scenario_from_dict({"strategy": {"name": "fedavg", "momentum": 0.9}})


# --- typed parameters of sources, partitioners, modality scenarios, model builders, train engines ---------
OUT_OF_RANGE = {
    "data source": ({"data": {"source": "glyphs", "image_size": 4}}, "data.image_size: got 4, must be >= 8"),
    "partitioner": ({"partition": {"name": "dirichlet", "alpha": 0}},
                    "partition.alpha: got 0.0, must be > 0"),
    "modality scenario": ({"modality": {"name": "missing", "missing_rate": 2}},
                          "modality.missing_rate: got 2.0, must be <= 1"),
    "model builder": ({"model": {"name": "tiny-vlm", "tiny": {"vision_layers": 0}}},
                      "model.tiny.vision_layers: got 0, must be >= 1"),
    "train engine": ({"train": {"engine": {"name": "deepspeed", "zero_stage": 4}}},
                     "train.engine.zero_stage: got 4, must be <= 3"),
}


def _problems(raw: dict, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(raw, overrides)
    return info.value.problems


@pytest.mark.parametrize("kind", list(OUT_OF_RANGE))
def test_each_kind_rejects_an_out_of_range_parameter_with_its_path(kind):
    raw, expected = OUT_OF_RANGE[kind]
    assert _problems(raw) == [expected]


def test_every_kind_is_reported_in_one_error():
    raw = {}
    for section, _ in OUT_OF_RANGE.values():
        raw.update(section)
    assert sorted(_problems(raw)) == sorted(expected for _, expected in OUT_OF_RANGE.values())


def test_inline_keys_and_overrides_feed_the_entry_parameters():
    scenario = scenario_from_dict({"partition": {"name": "dirichlet", "alpha": 0.5}},
                                  ["partition.alpha=0.1", "modality.name=hybrid", "modality.absent_rate=0.2"])
    assert scenario.partition.options == {"alpha": 0.1}
    assert scenario.modality.options == {"absent_rate": 0.2}
    assert _problems({}, ["modality.name=missing", "modality.missing_rate=2"]) == [
        "modality.missing_rate: got 2.0, must be <= 1"]


def test_a_key_the_entry_does_not_take_names_the_entries_that_do():
    problems = _problems({"partition": {"name": "iid", "alpha": 0.5},
                          "modality": {"name": "missing", "missing_rat": 0.3},
                          "train": {"engine": {"name": "torch", "zero_stage": 2}}})
    assert problems == [
        "partition.alpha: partitioner 'iid' has no parameter 'alpha' (a parameter of dirichlet, quantity); "
        "it accepts: none",
        "modality.missing_rat: modality scenario 'missing' has no parameter 'missing_rat'; did you mean "
        "'missing_rate'? it accepts: missing_rate",
        "train.engine.zero_stage: train engine 'torch' has no parameter 'zero_stage' (a parameter of "
        "deepspeed); it accepts: none"]


def test_partition_mode_picks_the_registry_whose_parameters_apply():
    fedmllm = {"name": "dirichlet", "mode": "fedmllm", "fedmllm_repair": "first", "min_client_size": 1}
    assert scenario_from_dict({"partition": fedmllm}).partition.options == {"fedmllm_repair": "first"}
    assert _problems({"partition": {"name": "dirichlet", "fedmllm_repair": "first"}}) == [
        "partition.fedmllm_repair: partitioner 'dirichlet' has no parameter 'fedmllm_repair'; "
        "it accepts: alpha"]


def test_further_sources_and_roots_are_checked_with_their_paths(tmp_path):
    problems = _problems({"data": {"secondary": {"source": "glyphs", "scripts": ["Latin"]},
                                   "eval_sources": [{"source": "slake", "root": str(tmp_path),
                                                     "english_only": "yes"}, {"source": "wiki_topics"}],
                                   "options": {"root": str(tmp_path)}}})
    assert problems == [
        "data.options.root: root is not an option; set data.root for source 'digits'",
        "data.secondary: scripts must name at least two of: Latin, Greek, Cyrillic, Armenian, Georgian, "
        "Hebrew; got ['Latin']",
        "data.eval_sources[0].english_only: got 'yes' (str), expected true or false",
        "data.eval_sources[1].root: data source 'wiki_topics' reads files; set data.eval_sources[1].root "
        "to its directory"]


def test_deepspeed_rules_across_fields_and_sections():
    engine = {"name": "deepspeed", "zero_stage": 0, "offload_optimizer": True, "bf16": True}
    problems = _problems({"train": {"engine": engine}})
    assert problems == [
        "train.engine: offload_optimizer needs ZeRO: set train.engine.zero_stage to 1, 2 or 3"]
    problems = _problems({"train": {"engine": {"name": "deepspeed", "bf16": True}}})
    assert len(problems) == 1 and problems[0].startswith("train.engine.bf16 casts")


def test_every_entry_lists_its_parameters():
    from fedray.client.trainers import TRAINERS
    from fedray.config.params import describe_params
    from fedray.data.modality import MODALITY_SCENARIOS
    from fedray.data.partition import FEDMLLM_PARTITIONERS, PARTITIONERS
    from fedray.data.sources import DATA_SOURCES
    from fedray.models import MODEL_BUILDERS

    def names(registry, entry):
        return [row["name"] for row in describe_params(registry.params_class(entry))]

    assert names(MODEL_BUILDERS, "tiny-vlm")[:2] == ["image_size", "patch_size"]
    assert "image_grid" in names(MODEL_BUILDERS, "assembled") and names(MODEL_BUILDERS, "hf") == []
    assert names(TRAINERS, "deepspeed") == ["zero_stage", "offload_optimizer", "bf16"]
    assert names(TRAINERS, "torch") == [] and names(PARTITIONERS, "iid") == []
    assert names(FEDMLLM_PARTITIONERS, "dirichlet") == ["alpha", "fedmllm_repair"]
    assert names(MODALITY_SCENARIOS, "cross_modal") == ["image_clients"]
    assert names(DATA_SOURCES, "digits") == ["image_size"]
    assert all(row["help"] for registry in (PARTITIONERS, MODALITY_SCENARIOS, DATA_SOURCES, TRAINERS)
               for entry in registry for row in describe_params(registry.params_class(entry)))
