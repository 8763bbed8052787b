"""Medical task heterogeneity under ``mode: fedmllm``: the reference's shard assignment, the mix, the sources.

The reference's procedures are written out again below from their description, independently of
:mod:`fedray.data.fedmllm`:

- single (``gen_data_medical_vtqa_single.py``): Python's ``random`` seeded with 41; ``random.sample`` of
  k = 7 of the 10 clients are VQA-RAD (image QA) clients, the rest MedAlpaca (text QA). Continuing that
  stream, VQA-RAD is shuffled and cut into k equal shards (the last takes the remainder), the shards going
  to the sampled clients in sample order; then MedAlpaca likewise over the others, listed as a set
  difference of ints (ascending).
- mix (``gen_data_medical_vtqa_mix.py``): presence (client, task) ~ binomial(1, 1 − q), shape (10, 2),
  column 0 image QA, column 1 text QA (numpy unseeded in the reference; fedray seeds it with the scenario
  seed through a legacy RandomState). Python's ``random`` seeded with 41: a client with neither task takes
  image QA if ``random() < 0.5``, else text QA; then VQA-RAD is shuffled and cut into one shard per image
  client, then MedAlpaca into one per text client, each handed out in client order.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from fedray.config.load import scenario_from_dict
from fedray.config.params import NoParams
from fedray.data.federated import build_federated_data
from fedray.data.fedmllm import legacy_seed, task_mix, task_single
from fedray.data.modality import IMAGE, TEXT
from fedray.data.schema import samples_to_table
from fedray.data.sources import DATA_SOURCES, SourceData, load_source
from fedray.errors import ConfigError, DataError

N_IMAGE_QA, N_TEXT_QA = 23, 11


def _image_qa(params: NoParams) -> SourceData:
    rows = [{"id": f"vq-{i}", "image": b"\x89PNG-fake", "question": f"what is {i}?", "answer": "yes",
             "task": "medical_vqa", "source": "vq", "label": i % 2} for i in range(N_IMAGE_QA + 4)]
    splits = {"train": samples_to_table(rows[:N_IMAGE_QA]), "test": samples_to_table(rows[N_IMAGE_QA:])}
    return SourceData(splits=splits, label_names=(), task="medical_vqa")


def _text_qa(params: NoParams) -> SourceData:
    rows = [{"id": f"tq-{i}", "question": f"q{i}?", "answer": f"a{i}", "task": "medical_text_qa",
             "source": "tq", "label": i % 2} for i in range(N_TEXT_QA)]
    return SourceData(splits={"train": samples_to_table(rows), "test": samples_to_table([])}, label_names=(),
                      task="medical_text_qa")


@pytest.fixture()
def medical_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, source in (("vq", _image_qa), ("tq", _text_qa)):
        monkeypatch.setitem(DATA_SOURCES._entries, name, source)
        monkeypatch.setitem(DATA_SOURCES._params, name, NoParams)


def _scenario(partition: dict, mode: str = "fedmllm", seed: int = 41):
    return scenario_from_dict({
        "seed": seed,
        "data": {"source": "vq", "secondary": {"source": "tq"}},
        "partition": {"name": "iid", "num_clients": 10, "min_client_size": 1, "mode": mode, **partition},
    })


def _holdings(scenario) -> dict[int, list[str]]:
    data = build_federated_data(scenario)
    ids = data.train.column("id").to_pylist()
    return {spec.client_id: sorted(ids[i] for i in spec.indices) for spec in data.specs}


def _cut(stream: random.Random, rows: list[str], clients: list[int]) -> dict[int, list[str]]:
    """Shuffle, then equal shards with the last taking the remainder, handed to ``clients`` in order."""
    rows = list(rows)
    stream.shuffle(rows)
    size = len(rows) // len(clients)
    shards = [rows[i * size:(i + 1) * size] for i in range(len(clients))]
    shards[-1].extend(rows[len(clients) * size:])
    return dict(zip(clients, shards))


def reference_single(seed: int = 41, num_clients: int = 10, k: int = 7) -> dict[int, list[str]]:
    stream = random.Random(seed)
    image_clients = stream.sample(list(range(num_clients)), k)
    out = _cut(stream, [f"vq-{i}" for i in range(N_IMAGE_QA)], image_clients)
    text_clients = sorted(set(range(num_clients)) - set(image_clients))
    out.update(_cut(stream, [f"tq-{i}" for i in range(N_TEXT_QA)], text_clients))
    return {client: sorted(rows) for client, rows in out.items()}


def reference_mix(q: float, seed: int = 41, num_clients: int = 10) -> dict[int, list[str]]:
    presence = np.random.RandomState(seed).binomial(1, 1 - q, size=(num_clients, 2))
    stream = random.Random(seed)
    for client in range(num_clients):
        if presence[client].sum() == 0:
            presence[client, 0 if stream.random() < 0.5 else 1] = 1
    image_clients = [c for c in range(num_clients) if presence[c, 0]]
    text_clients = [c for c in range(num_clients) if presence[c, 1]]
    images = _cut(stream, [f"vq-{i}" for i in range(N_IMAGE_QA)], image_clients)
    texts = _cut(stream, [f"tq-{i}" for i in range(N_TEXT_QA)], text_clients)
    return {c: sorted(images.get(c, []) + texts.get(c, [])) for c in range(num_clients)}


def test_single_assigns_shards_as_the_reference(medical_sources) -> None:
    ours = _holdings(_scenario({"secondary_clients": 3}))
    assert ours == reference_single()
    # Pinned (CPython's random, seed 41): the image clients in sample order 6, 5, 3, 1, 7, 4, 2 get the
    # shuffled VQA-RAD shards of 3 rows (the last 5); clients 0, 8, 9 the MedAlpaca shards of 3, 3, 5.
    assert random.Random(41).sample(range(10), 7) == [6, 5, 3, 1, 7, 4, 2]
    assert {c: len(rows) for c, rows in ours.items()} == {6: 3, 5: 3, 3: 3, 1: 3, 7: 3, 4: 3, 2: 5,
                                                          0: 3, 8: 3, 9: 5}
    assert ours[6] == ["vq-10", "vq-20", "vq-22"] and ours[2] == ["vq-0", "vq-12", "vq-17", "vq-18", "vq-8"]
    assert ours[0] == ["tq-10", "tq-3", "tq-8"] and ours[9] == ["tq-1", "tq-2", "tq-4", "tq-5", "tq-7"]


def test_single_continues_one_stream_where_fresh_streams_would_differ() -> None:
    # The first image shard comes from the stream after random.sample, not from a fresh Random(41).
    shards = task_single(10, 7, (N_IMAGE_QA, N_TEXT_QA), 41)
    fresh = list(range(N_IMAGE_QA))
    random.Random(41).shuffle(fresh)
    assert [client for client, _ in shards[0]] == [6, 5, 3, 1, 7, 4, 2]
    assert shards[0][0][1].tolist() != fresh[:3]


def test_mix_assigns_tasks_and_shards_as_the_reference(medical_sources) -> None:
    ours = _holdings(_scenario({"task_absent_rate": 0.4}))
    assert ours == reference_mix(0.4)
    both = [c for c, rows in ours.items() if {r[:2] for r in rows} == {"vq", "tq"}]
    assert both, "with q = 0.4 and seed 41 some clients hold both tasks"
    data = build_federated_data(_scenario({"task_absent_rate": 0.4}))
    spec = data.specs[both[0]]
    assert spec.task == "medical_vqa+medical_text_qa" and set(spec.masks) == {IMAGE, TEXT}
    assert data.label_names[spec.task] == ()
    assert sorted(i for s in data.specs for i in s.indices) == list(range(N_IMAGE_QA + N_TEXT_QA))
    assert [t.name for t in data.tests] == ["test"], "a second task without test rows is not scored"


def test_mix_pinned_for_seed_41() -> None:
    presence = np.random.RandomState(41).binomial(1, 0.6, size=(10, 2))
    assert presence.tolist() == [[1, 1], [0, 1], [1, 0], [1, 0], [0, 1], [1, 1], [1, 1], [1, 1], [0, 1],
                                 [0, 1]]
    shards = task_mix(10, 0.4, (N_IMAGE_QA, N_TEXT_QA), 41)
    assert [c for c, _ in shards[0]] == [0, 2, 3, 5, 6, 7]
    assert [c for c, _ in shards[1]] == [0, 1, 4, 5, 6, 7, 8, 9]
    assert [len(rows) for _, rows in shards[0]] == [3, 3, 3, 3, 3, 8]
    assert [len(rows) for _, rows in shards[1]] == [1] * 7 + [4]


def test_mix_gives_a_client_with_neither_task_one_by_a_coin() -> None:
    # q = 0.9: most clients draw neither and are given one task each by the seed-41 coins.
    holders = task_mix(10, 0.9, (100, 100), 41)
    clients = sorted(c for task in holders for c, _ in task)
    assert set(clients) == set(range(10))
    stream, presence = random.Random(41), np.random.RandomState(41).binomial(1, 0.1, size=(10, 2))
    image_clients = []
    for client in range(10):
        if presence[client, 0] or (not presence[client, 1] and stream.random() < 0.5):
            image_clients.append(client)
    assert [c for c, _ in holders[0]] == image_clients


def test_fedray_mode_is_unchanged_and_its_mix_is_seeded(medical_sources) -> None:
    single = _holdings(_scenario({"secondary_clients": 3}, mode="fedray"))
    assert sum(1 for rows in single.values() if rows[0].startswith("tq")) == 3
    mixed = _scenario({"task_absent_rate": 0.4}, mode="fedray")
    assert _holdings(mixed) == _holdings(mixed)
    assert all(rows for rows in _holdings(mixed).values())


def test_fedmllm_dirichlet_with_a_second_task_takes_a_63_bit_seed(medical_sources) -> None:
    scenario = scenario_from_dict({
        "seed": 41, "data": {"source": "vq", "secondary": {"source": "tq"}},
        "partition": {"name": "dirichlet", "alpha": 5.0, "num_clients": 4, "min_client_size": 1,
                      "mode": "fedmllm", "secondary_clients": 1}})
    data = build_federated_data(scenario)  # crashed: "Seed must be between 0 and 2**32 - 1"
    assert sorted(i for s in data.specs for i in s.indices) == list(range(N_IMAGE_QA + N_TEXT_QA))


def test_legacy_seed_keeps_32_bit_seeds_and_folds_larger_ones() -> None:
    assert [legacy_seed(s) for s in (0, 41, 42, 2**32 - 1)] == [0, 41, 42, 2**32 - 1]
    big = (0x1234_5678 << 32) | 0x0000_FFFF
    assert legacy_seed(big) == 0x1234_5678 ^ 0x0000_FFFF
    assert all(0 <= legacy_seed(s) < 2**32 for s in (2**32, 2**63 - 1, big))
    np.random.RandomState(legacy_seed(2**63 - 1))  # accepted


def test_second_task_options_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="secondary_clients .* and task_absent_rate"):
        _scenario({"secondary_clients": 3, "task_absent_rate": 0.4})


def test_medalpaca_as_the_reference_keeps_every_card_for_training(tmp_path: Path) -> None:
    cards = [{"instruction": "i", "input": f"q{i}", "output": f"a{i}"} for i in range(8)]
    cards[2]["input"], cards[5]["output"] = "", None
    (tmp_path / "medical_meadow_wikidoc_medical_flashcards.json").write_text(json.dumps(cards))

    def load(**options):
        return load_source("medalpaca", str(tmp_path), options, seed=0, test_fraction=0.25)

    default = load()
    assert (default.train.num_rows, default.test.num_rows) == (4, 2)  # 6 non-empty cards, a quarter carved
    reference = load(skip_empty=False, all_train=True)
    assert reference.train.column("id").to_pylist() == [f"medalpaca-{i}" for i in range(8)]
    assert reference.train.column("question").to_pylist()[2] == ""
    assert reference.train.column("answer").to_pylist()[5] == ""
    assert reference.test.num_rows == 0


def test_too_few_rows_for_the_shards_is_an_error(medical_sources) -> None:
    scenario = _scenario({"secondary_clients": 3, "min_client_size": 4})  # 23 VQA-RAD rows over 7
    with pytest.raises(DataError, match=r"'medical_vqa' has 23 training rows for 7 clients.*size=4"):
        build_federated_data(scenario)
