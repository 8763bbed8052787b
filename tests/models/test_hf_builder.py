import pytest
import torch

from fedray.config.schema import ModelConfig
from fedray.errors import ModelError
from fedray.models import build_model


def test_hf_builder_loads_a_saved_model_directory(tiny_model_dir):
    loaded = build_model(ModelConfig(name="hf", path=str(tiny_model_dir)))
    reference = build_model(ModelConfig())
    assert loaded.family == "llava"
    ref_state = reference.model.state_dict()
    got_state = loaded.model.state_dict()
    assert set(ref_state) == set(got_state)
    assert all(torch.equal(ref_state[k], got_state[k]) for k in ref_state)
    assert loaded.processor.tokenizer.get_vocab() == reference.processor.tokenizer.get_vocab()


def test_hf_builder_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelError, match="needs model.path"):
        build_model(ModelConfig(name="hf"))
    with pytest.raises(ModelError, match="does not exist"):
        build_model(ModelConfig(name="hf", path=str(tmp_path / "nope")))
    with pytest.raises(ModelError, match="no config.json"):
        build_model(ModelConfig(name="hf", path=str(tmp_path)))
