"""Bounded YAML: size, alias expansion, self-reference, duplicate keys, encodings (issue 14)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from fedray.config import yamlio
from fedray.config.load import load_scenario
from fedray.config.yamlio import parse_yaml, read_yaml_file
from fedray.errors import ConfigError


def alias_bomb(levels: int = 9, width: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert info.value.source == str(path)
    return info.value.problems


def test_alias_bomb_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb() + "name: bomb\n")
    start = time.process_time()
    (problem,) = problems_of(path)
    assert time.process_time() - start < 1.0
    assert "alias" in problem and f"{yamlio.MAX_YAML_NODES:,}" in problem


def test_a_few_aliases_are_still_fine() -> None:
    assert parse_yaml(alias_bomb(levels=3)) ["a2"][0][0] == ["x"] * 10


def test_self_referring_alias_is_refused() -> None:
    with pytest.raises(yaml.YAMLError, match="refers to the collection that contains it"):
        parse_yaml("a: &x [1, *x]\n")


def test_duplicate_keys_are_an_error_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\ntrain:\n  lr: 0.1\n  lr: 0.2\n")
    (problem,) = problems_of(path)
    assert "duplicate key 'lr'" in problem and "line 3" in problem and "line 4" in problem


def test_merge_keys_may_be_overridden() -> None:
    assert parse_yaml("base: &b {x: 1, y: 2}\nc: {<<: *b, x: 3}\n")["c"] == {"x": 3, "y": 2}


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(yaml.YAMLError, match="nested too deeply"):
        parse_yaml("[" * 20000 + "]" * 20000)


def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlio, "MAX_YAML_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "# padding\n" * 20)
    (problem,) = problems_of(path)
    assert "over the 100-byte limit" in problem


@pytest.mark.parametrize("data, words", [
    ("name: x\n".encode("utf-16"), "UTF-16"),
    (bytes(range(256)), "not UTF-8 text"),
    (b"name: x\n\x00\x00", "NUL"),
])
def test_undecodable_files_name_the_file(tmp_path: Path, data: bytes, words: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(data)
    (problem,) = problems_of(path)
    assert words in problem


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffname: bom\n".encode("utf-8"))
    assert load_scenario(path).name == "bom"


def test_too_long_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read scenario file|does not exist"):
        read_yaml_file(tmp_path / ("n" * 300 + ".yaml"), "scenario file", "scenarios")


def test_override_values_are_bounded_too() -> None:
    with pytest.raises(ConfigError, match="duplicate key"):
        mini = Path(__file__).resolve().parents[2] / "scenarios" / "mini.yaml"
        load_scenario(mini, ["strategy={a: 1, a: 2}"])
