"""The "crisismmd" source on a tiny CrisisMMD v2.0 tree: split TSVs and tweet images."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from fedray.data.schema import SAMPLE_SCHEMA, decode_image
from fedray.data.sources import read_source
from fedray.data.sources.crisismmd import LABELS
from fedray.errors import ConfigError, DataError

HEADER = ["event_name", "tweet_id", "image_id", "tweet_text", "image", "label", "label_text", "label_image",
          "label_text_image"]
# (tweet_id, image index, tweet text, label_text, label_image)
HUMANITARIAN = {
    "train": [("901", 0, "Flooded homes in Houston https://t.co/abc help!", "affected_individuals",
               "infrastructure_and_utility_damage"),
              ("901", 1, "Flooded homes in Houston https://t.co/abc help!", "affected_individuals",
               "affected_individuals"),
              ("902", 0, "  Volunteers bring food http://t.co/x1  ", "rescue_volunteering_or_donation_effort",
               "not_humanitarian")],
    "dev": [("903", 0, "https://t.co/only", "vehicle_damage", "vehicle_damage")],
    "test": [("904", 0, "Still no power", "other_relevant_information", "injured_or_dead_people")],
}


def _jpeg(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 90, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def write_tree(parent: Path, task: str = "humanitarian", splits: dict | None = None,
               name: str = "task_{task}_text_img_{split}.tsv") -> Path:
    base = parent / "CrisisMMD_v2.0"
    (base / "crisismmd_datasplit_all").mkdir(parents=True, exist_ok=True)
    for split, rows in (splits or HUMANITARIAN).items():
        lines = ["\t".join(HEADER)]
        for tweet_id, n, text, label_text, label_image in rows:
            image = f"data_image/hurricane_harvey/1_9_2017/{tweet_id}_{n}.jpg"
            (base / image).parent.mkdir(parents=True, exist_ok=True)
            (base / image).write_bytes(_jpeg((800, 400) if n else (30, 20)))
            lines.append("\t".join(["hurricane_harvey", tweet_id, f"{tweet_id}_{n}", text, image,
                                    label_image, label_text, label_image, "Positive"]))
        (base / "crisismmd_datasplit_all" / name.format(task=task, split=split)).write_text(
            "\n".join(lines) + "\n")
    return base


def load(root: Path, **options):
    return read_source("crisismmd", options, str(root))


def test_humanitarian_rows(tmp_path: Path) -> None:
    write_tree(tmp_path)
    data = load(tmp_path)  # the parent of CrisisMMD_v2.0 works too
    assert data.task == "crisismmd_humanitarian" and data.label_names == LABELS["humanitarian"]
    assert data.label_names[0] == "affected_individuals" and data.label_names[-1] == "not_humanitarian"
    train = data.splits["train"]
    assert train.schema.equals(SAMPLE_SCHEMA)
    assert train.column("id").to_pylist() == ["crisismmd-901_0", "crisismmd-901_1", "crisismmd-902_0"]
    assert train.column("text").to_pylist() == ["Flooded homes in Houston  help!",
                                                "Flooded homes in Houston  help!", "Volunteers bring food"]
    assert train.column("answer").to_pylist() == ["infrastructure_and_utility_damage", "affected_individuals",
                                                  "not_humanitarian"]
    assert train.column("label").to_pylist() == [1, 0, 7]
    assert train.column("choices").to_pylist()[0] == list(LABELS["humanitarian"])
    assert set(train.column("question").to_pylist()) == {"What is the humanitarian category?"}
    assert set(train.column("source").to_pylist()) == {"crisismmd"}
    assert data.splits["validation"].column("text").to_pylist() == [None], "a URL-only tweet has no text"
    assert data.splits["test"].column("label").to_pylist() == [2]


def test_images_and_label_field(tmp_path: Path) -> None:
    base = write_tree(tmp_path)
    data = load(base, label_field="label_text", max_image_side=200)
    train = data.splits["train"]
    assert train.column("answer").to_pylist() == ["affected_individuals", "affected_individuals",
                                                  "rescue_volunteering_or_donation_effort"]
    assert train.column("image")[0].as_py() == (base / "data_image/hurricane_harvey/1_9_2017/901_0.jpg"
                                                ).read_bytes()
    assert decode_image(train.column("image")[1].as_py()).size == (200, 100)


def test_other_tasks_and_agreed_files(tmp_path: Path) -> None:
    informative = {"train": [("7", 0, "a", "informative", "not_informative")]}
    write_tree(tmp_path, "informative", informative)
    data = load(tmp_path, task="informative")
    assert data.task == "crisismmd_informative" and data.label_names == ("informative", "not_informative")
    assert data.splits["train"].column("answer").to_pylist() == ["not_informative"]
    assert data.splits["train"].column("question").to_pylist() == ["Is this tweet informative?"]
    assert set(data.splits) == {"train"}
    damage = {"train": [("8", 0, "b", "mild_damage", "mild_damage")],
              "test": [("9", 0, "c", "x", "severe_damage")]}
    write_tree(tmp_path, "damage", damage, name="task_{task}_text_img_agreed_lab_{split}.tsv")
    data = load(tmp_path, task="damage", agreed=True)
    assert data.splits["train"].column("label").to_pylist() == [1]
    assert data.splits["test"].column("answer").to_pylist() == ["severe_damage"]
    assert data.splits["train"].column("question").to_pylist() == ["How severe is the damage?"]
    with pytest.raises(DataError, match=r"task_damage_text_img_train\.tsv not found"):
        load(tmp_path, task="damage")


def test_option_errors(tmp_path: Path) -> None:
    write_tree(tmp_path)
    with pytest.raises(ConfigError, match="data.task: got 'disaster' .*expected one of 'humanitarian', "
                                          "'informative', 'damage'"):
        load(tmp_path, task="disaster")
    with pytest.raises(ConfigError, match="data.label_field: got 'image_label' .*expected one of "
                                          "'label_image'"):
        load(tmp_path, label_field="image_label")
    with pytest.raises(ConfigError, match="data.agreed: got 'yes' .*expected true or false"):
        load(tmp_path, agreed="yes")


def test_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"crisismmd_datasplit_all/task_humanitarian_text_img_train\.tsv not "
                                        r"found; data\.root must be the CrisisMMD_v2\.0 folder"):
        load(tmp_path)


def test_bad_rows(tmp_path: Path) -> None:
    base = write_tree(tmp_path)
    path = base / "crisismmd_datasplit_all" / "task_humanitarian_text_img_train.tsv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], lines[2].replace("affected_individuals", "flood_victims")]))
    with pytest.raises(DataError, match=r"img_train\.tsv line 3: label_image 'flood_victims' is not a "
                                        r"humanitarian label; allowed: affected_individuals, "):
        load(base)
    path.write_text("\n".join([*lines[:2], lines[2] + "\textra"]))
    with pytest.raises(DataError, match=r"img_train\.tsv line 3 has 10 tab-separated fields, expected 9"):
        load(base)
    header = lines[0].replace("image_id", "img_id")
    path.write_text("\n".join([header, *lines[1:]]))
    with pytest.raises(DataError, match=r"img_train\.tsv line 2 has no field 'image_id'"):
        load(base)
