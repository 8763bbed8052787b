"""``fedray data check``: rows per split, images verified, and exit 2 naming what is missing or broken."""

from __future__ import annotations

import datasets
import yaml

from fedray.cli.data_check import image_problem, spread
from fedray.cli.main import main
from tests.data.sources.test_hf import MEME_OPTIONS, meme_splits, png


def scenario_file(tmp_path, root) -> str:
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump({"name": "check", "data": {"source": "hf", "root": str(root),
                                                                **MEME_OPTIONS}}))
    return str(path)


def test_a_whole_copy_is_reported_with_its_rows(tmp_path, capsys):
    meme_splits().save_to_disk(str(tmp_path / "disk"))
    assert main(["data", "check", scenario_file(tmp_path, tmp_path / "disk")]) == 0
    out = capsys.readouterr().out
    assert f"data: hf at {tmp_path / 'disk'}" in out
    assert "rows: train 8, test 8 (as shipped; no validation split)" in out
    assert "images: 16 rows with an image, 16 verified" in out and "all 1 source(s) ok" in out


def test_a_broken_image_and_a_missing_root_exit_2(tmp_path, capsys):
    splits = meme_splits()
    broken = png(3)[:-20]  # its header still reads; its data and end chunk are cut
    assert image_problem(broken) is not None and image_problem(png(3)) is None
    train = splits["train"].to_dict()
    train["image"][3] = {"bytes": broken, "path": None}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(train, features=splits["train"].features),
                          "test": splits["test"]}).save_to_disk(str(tmp_path / "disk"))
    assert main(["data", "check", scenario_file(tmp_path, tmp_path / "disk"), "--max-images", "100"]) == 2
    out = capsys.readouterr().out
    assert "1 problem(s)" in out
    assert "data (hf): split 'train' row 4 (id memes-train-3): unreadable image" in out
    assert main(["data", "check", scenario_file(tmp_path, tmp_path / "gone")]) == 2
    err = capsys.readouterr().err
    assert f"data.root: '{tmp_path / 'gone'}' does not exist" in err


def test_spread_keeps_the_ends_and_the_bound():
    assert spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert spread(list(range(3)), 5) == [0, 1, 2]
    assert spread(list(range(3)), 0) == [] and spread(list(range(3)), 1) == [0]
