"""``fedray data show``: samples as a client trains on them, on a tiny copy of the Hateful Memes release."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from fedray.cli.main import main
from fedray.config.schema import ModelConfig
from fedray.models.processors import build_processor

TEXTS = ["its their character not their color", "don't be afraid", "putting bows on your pet",
         "bravery at its finest", "look how many people love you", "when you're the new guy",
         "a sunny day at the park", "that feeling when"]
INSTRUCTION = "Select the best answer to the following multiple-choice question"
ENDING = ("Answer with the option's letter from the given choices directly and only give the best option. "
          "The best answer is: ")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (10, 120, 40)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    """A Hateful Memes release of 8 train / 2 dev / 2 test memes; 2 clients; half the modalities missing."""
    root = tmp_path / "hateful_memes"
    (root / "img").mkdir(parents=True)
    splits = {"train": range(8), "dev_seen": range(8, 10), "test_seen": range(10, 12)}
    for split, ids in splits.items():
        lines = [{"id": i, "img": f"img/{i:05d}.png", "label": i % 2, "text": TEXTS[i % len(TEXTS)]}
                 for i in ids]
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        for r in lines:
            (root / r["img"]).write_bytes(_png())
    raw = {"name": "hm-show", "seed": 3, "data": {"source": "hateful_memes", "root": str(root)},
           "partition": {"name": "iid", "num_clients": 2, "min_client_size": 1},
           "modality": {"name": "missing", "missing_rate": 0.5}, "prompts": {"style": "fedmllm"},
           "model": {"max_length": 256}, "federation": {"clients_per_round": 2}}
    path = tmp_path / "hm.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def show(capsys, *args: str) -> list[dict]:
    assert main(["data", "show", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def expected_user(sample: dict, agnostic: bool = False) -> str:
    """The reference's user turn for the modalities the sample holds."""
    image, text = sample["has_image"], sample["has_text"]
    held = " and ".join(["text"] * text + ["image"] * image)
    words = ", without considering the modality" if agnostic else (f" based on the {held}" if held else "")
    lines = ["<image>"] * image + [f"{INSTRUCTION}{words}."] + [TEXTS[int(sample["sample_id"].split("-")[-1])
                                                                     % len(TEXTS)]] * text
    return "\n".join(lines + [f"Is the content hateful{words}?", "Options:\n(A) not-hateful\n(B) hateful",
                              ENDING])


@pytest.mark.parametrize("agnostic", [False, True])
def test_samples_are_the_references_turns_for_what_each_holds(scenario, capsys, agnostic):
    samples = show(capsys, str(scenario), f"modality.agnostic_prompt={str(agnostic).lower()}", "--limit", "4")
    assert len(samples) == 8 and {s["client_id"] for s in samples} == {0, 1}
    keys = {"client_id", "sample_id", "user", "assistant", "rendered", "has_image", "has_text"}
    assert keys <= set(samples[0])
    assert len({(s["has_image"], s["has_text"]) for s in samples}) >= 3  # several modality cases
    for s in samples:
        assert s["user"] == expected_user(s, agnostic)
        label = int(s["sample_id"].split("-")[-1]) % 2
        assert s["assistant"] == ["(A) not-hateful", "(B) hateful"][label]
        # the tiny model's chat template: "USER: <image>\n... ASSISTANT: (B) hateful</s>"
        assert s["rendered"].startswith("USER: " + s["user"]) and s["assistant"] + "</s>" in s["rendered"]


def test_one_client_the_test_set_and_the_text_view(scenario, capsys):
    (only,) = show(capsys, str(scenario), "--client", "1", "--limit", "1")
    assert only["client_id"] == 1
    tests = show(capsys, str(scenario), "--test", "--limit", "5")
    assert len(tests) == 2 and all(t["client_id"] is None and t["has_image"] and t["has_text"] for t in tests)
    assert main(["data", "show", str(scenario), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "prompt style fedmllm, fingerprint fedmllm-v1-" in out and "[rendered]" in out
    assert main(["data", "show", str(scenario), "--client", "7"]) == 2
    assert "clients 0..1" in capsys.readouterr().err


def test_hf_models_render_through_their_processor_without_loading_weights(tiny_model_dir, monkeypatch):
    import transformers

    from fedray.models.base import build_model

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is it?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "(B) hateful"}]}]
    full = build_model(ModelConfig(name="hf", path=str(tiny_model_dir))).processor
    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained",
                        classmethod(lambda cls, *a, **k: pytest.fail("loaded the model")))
    alone = build_processor(ModelConfig(name="hf", path=str(tiny_model_dir)))
    assert alone.apply_chat_template(messages, tokenize=False) == \
        full.apply_chat_template(messages, tokenize=False)
