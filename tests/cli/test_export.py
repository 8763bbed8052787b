"""``fedray export``: a run's adapter, base and merged model, loadable outside fedray."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel

from fedray.cli.main import main
from fedray.config import scenario_from_dict
from fedray.config.load import dump_scenario
from fedray.engine.adapter_files import ADAPTER_CONFIG, ADAPTER_WEIGHTS, write_adapter_dir
from fedray.engine.export import wrapped_run_model
from fedray.models import build_model
from fedray.models.lora import apply_lora, get_adapter_state, peft_adapter_config, set_adapter_state

SCENARIO = scenario_from_dict({
    "name": "export", "model": {"tiny": {"text_layers": 1, "vision_layers": 1}},
    "lora": {"rank": 2, "modules_to_save": ["multi_modal_projector"]},
})
INPUT_IDS = torch.arange(5, 25).reshape(2, 10)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as a finished run leaves it: config.yaml, a best adapter in the PEFT layout and a
    final one in the older single-file layout (no adapter config)."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("run")
    dump_scenario(SCENARIO, path / "config.yaml")
    built = build_model(SCENARIO.model)
    model = apply_lora(built.model, SCENARIO.lora, built.family)
    generator = torch.Generator().manual_seed(1)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=generator)
             for k, v in get_adapter_state(model).items()}
    set_adapter_state(model, state)
    write_adapter_dir(path / "best_adapter", state, peft_adapter_config(model))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path / "global_adapter.safetensors"))
    return path


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=INPUT_IDS).logits


def test_export_writes_adapter_base_and_merged_that_load_without_fedray(run_dir, tmp_path, capsys):
    from transformers import LlavaForConditionalGeneration

    out = tmp_path / "export"
    assert main(["export", str(run_dir), "--to", str(out), "--base", "--merged"]) == 0
    assert "PeftModel.from_pretrained" in capsys.readouterr().out
    expected = _logits(wrapped_run_model(run_dir, "best")[0])
    base = LlavaForConditionalGeneration.from_pretrained(out / "base")
    assert torch.allclose(_logits(PeftModel.from_pretrained(base, out)), expected, atol=1e-6, rtol=0)
    merged = LlavaForConditionalGeneration.from_pretrained(out / "merged")
    assert torch.allclose(_logits(merged), expected, atol=1e-4, rtol=0)  # merging reorders the sums
    assert (out / "merged" / "tokenizer_config.json").exists()  # the processor travels with it
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in out.rglob("*") if p.is_file())  # shareable


def test_an_older_run_directory_exports_with_a_rebuilt_config(run_dir, tmp_path):
    out = tmp_path / "final"
    assert main(["export", str(run_dir), "--to", str(out), "--which", "final"]) == 0
    assert (out / ADAPTER_WEIGHTS).exists()
    config = json.loads((out / ADAPTER_CONFIG).read_text())
    assert config["r"] == 2 and config["modules_to_save"] == ["multi_modal_projector"]
    loaded = PeftModel.from_pretrained(build_model(SCENARIO.model).model, out)
    assert torch.allclose(_logits(loaded), _logits(wrapped_run_model(run_dir, "final")[0]), atol=1e-6, rtol=0)


def test_export_refuses_a_non_empty_target_and_a_missing_adapter(run_dir, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["export", str(run_dir), "--to", str(tmp_path / "full")]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    empty_run = tmp_path / "run"
    dump_scenario(SCENARIO, empty_run / "config.yaml")
    assert main(["export", str(empty_run), "--to", str(tmp_path / "x")]) == 2
    assert "holds no best_adapter" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
