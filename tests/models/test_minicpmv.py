"""MiniCPM-V through fedray's normal paths: Collator batches, ``model(**batch).loss``, ``generate_answers``
and option scoring, on a tiny fake MiniCPM-V checkpoint that exists only as remote code in its directory.

The fake was written after reading openbmb's MiniCPM-V 2.6 remote code (``modeling_minicpmv.py``,
``processing_minicpmv.py``, ``image_processing_minicpmv.py``) and MiniCPM-Llama3-V 2.5's
``modeling_minicpmv.py``. It mimics, at toy size:

- the model: ``llm`` (a real transformers ``LlamaForCausalLM``, as in 2.5; 2.6 has a Qwen2 one), ``vpm`` (a
  real ``Idefics2VisionTransformer``, the NaViT SigLIP that 2.5 uses), ``resampler`` (learned queries
  attending over a slice's valid patches, ``forward(x, tgt_sizes)``); ``forward(data, **kwargs)`` with
  ``data`` = ``input_ids``, ``pixel_values`` (per sample, a list of (3, patch, h*w*patch) slices),
  ``tgt_sizes``, ``image_bound``, ``position_ids``, returning the llm's output and no loss of its own;
  ``get_vllm_embedding(data)`` (slices through vpm + resampler, features written over the ``image_bound``
  spans; a dummy image in training when the batch has none); 2.6's ``generate(input_ids, pixel_values,
  tgt_sizes, image_bound, attention_mask, tokenizer, ...)``, which returns only the new tokens of
  ``llm.generate(inputs_embeds=...)``.
- the processor: 2.6's ``processor(texts, [[images] per text], return_tensors="pt")``, where each text carries
  ``(<image>./</image>)`` markers that become ``<image_id>i</image_id><image><unk>*Q</image>`` plus one
  ``<slice><unk>*Q</slice>`` per slice of a large image, left padding with id 0, ``image_bound`` from the
  start/end tokens, and nested ``pixel_values``/``tgt_sizes`` lists; the chat template is the tokenizer's
  (ChatML over string contents, as in 2.6).

Simplified: the slice grid (a row or column of up to ``max_slice_nums`` slices, not the best-ratio search),
the vision position embedding (Idefics2's, not 2.6's ``tgt_sizes``-aware SigLIP), the resampler (no 2-D
sin-cos position embedding), the tokenizer (a tiny BPE; the real tokenizer class exposes ``im_start_id``
etc., which the fake processor looks up by token instead), the training dummy image (16 px, not 224 px).
None of it is checked against a real checkpoint here.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from fedray.client.evaluate import generate_answers
from fedray.client.scoring import option_logprobs
from fedray.config.schema import LoraConfig, ModelConfig
from fedray.data.prompts import user_message
from fedray.data.schema import decode_image, encode_png
from fedray.errors import ModelError
from fedray.models import build_model
from fedray.models.collate import Collator
from fedray.models.lora import apply_lora
from fedray.models.minicpmv import MiniCPMVProcessorShim, image_spans, minicpmv_data
from fedray.models.tokenizer import build_tiny_tokenizer

CONFIG_PY = '''
from transformers import LlamaConfig


class MiniCPMVConfig(LlamaConfig):
    model_type = "minicpmv"

    def __init__(self, vision_config=None, query_num=4, patch_size=4, **kwargs):
        self.vision_config = vision_config or {}
        self.query_num = query_num
        self.patch_size = patch_size
        super().__init__(**kwargs)
'''

MODELING_PY = '''
import torch
from torch import nn
from transformers import LlamaForCausalLM, LlamaPreTrainedModel
from transformers.models.idefics2.modeling_idefics2 import Idefics2VisionConfig, Idefics2VisionTransformer

from .configuration_minicpm import MiniCPMVConfig


class Resampler(nn.Module):
    def __init__(self, num_queries, embed_dim, kv_dim):
        super().__init__()
        self.query = nn.Parameter(torch.randn(num_queries, embed_dim) * 0.02)
        self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False)
        self.attn = nn.MultiheadAttention(embed_dim, 2, batch_first=True)
        self.ln_post = nn.LayerNorm(embed_dim)

    def forward(self, x, tgt_sizes):  # x (N, L, kv_dim); tgt_sizes (N, 2) patch grid per slice
        valid = (tgt_sizes[:, 0] * tgt_sizes[:, 1]).to(x.device)
        padding = torch.arange(x.shape[1], device=x.device)[None] >= valid[:, None]
        kv = self.kv_proj(x)
        out, _ = self.attn(self.query.expand(x.shape[0], -1, -1), kv, kv, key_padding_mask=padding)
        return self.ln_post(out)  # (N, Q, D)


class MiniCPMV(LlamaPreTrainedModel):
    config_class = MiniCPMVConfig

    def __init__(self, config):
        super().__init__(config)
        self.llm = LlamaForCausalLM(config)
        vision = Idefics2VisionConfig(**config.vision_config)
        vision._attn_implementation = "eager"
        self.vpm = Idefics2VisionTransformer(vision)
        self.resampler = Resampler(config.query_num, config.hidden_size, vision.hidden_size)
        self.terminators = ["<|im_end|>", "<|endoftext|>"]
        self.post_init()

    def get_input_embeddings(self):
        return self.llm.get_input_embeddings()

    def get_vllm_embedding(self, data):
        embed = self.llm.model.embed_tokens
        dtype, device = embed.weight.dtype, embed.weight.device
        per_sample = data["pixel_values"]
        flat = [s.flatten(end_dim=1).permute(1, 0) for sample in per_sample for s in sample]  # (L_k, 3P)
        if flat:
            tgt = torch.vstack([t for t in data["tgt_sizes"] if isinstance(t, torch.Tensor)]).int()
            padded = nn.utils.rnn.pad_sequence(flat, batch_first=True)  # (N, L, 3P)
            n, length, _ = padded.shape
            images = padded.permute(0, 2, 1).reshape(n, 3, -1, length)  # (N, 3, P, L): one row of patches
            mask = torch.zeros((n, 1, length // self.config.patch_size), dtype=torch.bool, device=device)
            for k in range(n):
                mask[k, 0, : tgt[k, 0] * tgt[k, 1]] = True
            features = self.vpm(images.to(device, dtype), patch_attention_mask=mask).last_hidden_state
            features = self.resampler(features, tgt)
            vision, start = [], 0
            for sample in per_sample:
                vision.append(features[start: start + len(sample)])
                start += len(sample)
        else:
            dummy = []
            if self.training:
                side = 4 * self.config.patch_size
                dummy_image = torch.zeros((1, 3, side, side), device=device, dtype=dtype)
                dummy_tgt = torch.tensor([[4, 4]], dtype=torch.int32)
                dummy = self.resampler(self.vpm(dummy_image).last_hidden_state, dummy_tgt)
            vision = [dummy for _ in per_sample]
        embeddings = embed(data["input_ids"])  # (B, T, D)
        rows = []
        for i, row in enumerate(embeddings):
            bounds = data["image_bound"][i]
            if len(vision[i]) > 0 and len(bounds) > 0:
                index = torch.cat([torch.arange(int(s), int(e)) for s, e in bounds]).to(device)
                row = row.index_copy(0, index, vision[i].reshape(-1, row.shape[-1]).to(row.dtype))
            elif len(vision[i]) > 0 and self.training:
                row = row + vision[i][0].mean() * 0
            rows.append(row)
        return torch.stack(rows), vision

    def forward(self, data, **kwargs):
        embeddings, _ = self.get_vllm_embedding(data)
        return self.llm(input_ids=None, position_ids=data["position_ids"].long(), inputs_embeds=embeddings,
                        **kwargs)

    def generate(self, input_ids=None, pixel_values=None, tgt_sizes=None, image_bound=None,
                 attention_mask=None, tokenizer=None, vision_hidden_states=None,
                 return_vision_hidden_states=False, stream=False, decode_text=False, **kwargs):
        data = {"input_ids": input_ids, "image_bound": image_bound, "pixel_values": pixel_values,
                "tgt_sizes": tgt_sizes}
        with torch.inference_mode():
            embeddings, vision = self.get_vllm_embedding(data)
            terminators = [tokenizer.convert_tokens_to_ids(t) for t in self.terminators]
            out = self.llm.generate(inputs_embeds=embeddings, pad_token_id=0, eos_token_id=terminators,
                                    attention_mask=attention_mask, **kwargs)
        if decode_text:
            out = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in out]
        return (out, vision) if return_vision_hidden_states else out
'''

IMAGE_PROCESSING_PY = '''
import math

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature


class MiniCPMVImageProcessor(BaseImageProcessor):
    model_input_names = ["pixel_values"]

    def __init__(self, max_slice_nums=3, scale_resolution=16, patch_size=4, image_feature_size=4,
                 im_start="<image>", im_end="</image>", slice_start="<slice>", slice_end="</slice>",
                 unk="<unk>", im_id_start="<image_id>", im_id_end="</image_id>", slice_mode=True,
                 use_image_id=True, norm_mean=(0.5, 0.5, 0.5), norm_std=(0.5, 0.5, 0.5), version=2.6,
                 **kwargs):
        super().__init__(**kwargs)
        self.max_slice_nums, self.scale_resolution = max_slice_nums, scale_resolution
        self.patch_size, self.image_feature_size = patch_size, image_feature_size
        self.im_start, self.im_end = im_start, im_end
        self.slice_start, self.slice_end = slice_start, slice_end
        self.unk, self.im_id_start, self.im_id_end = unk, im_id_start, im_id_end
        self.slice_mode, self.use_image_id, self.version = slice_mode, use_image_id, version
        self.norm_mean, self.norm_std = list(norm_mean), list(norm_std)

    def _fit(self, width, height):  # about scale_resolution^2 pixels, sides multiples of patch_size
        ratio = width / height
        new_h = self.scale_resolution / math.sqrt(ratio)
        p = self.patch_size
        return max(round(new_h * ratio / p) * p, p), max(round(new_h / p) * p, p)

    def get_sliced_grid(self, image_size, max_slice_nums=None):
        width, height = image_size
        multiple = min(math.ceil(width * height / self.scale_resolution ** 2),
                       max_slice_nums or self.max_slice_nums)
        if not self.slice_mode or multiple <= 1:
            return None
        return (multiple, 1) if width >= height else (1, multiple)  # (columns, rows)

    def get_sliced_images(self, image, max_slice_nums=None):
        image = image.convert("RGB")
        pieces = [image.resize(self._fit(*image.size))]
        grid = self.get_sliced_grid(image.size, max_slice_nums)
        if grid is not None:
            cols, rows = grid
            cell_w, cell_h = self._fit(image.size[0] / cols, image.size[1] / rows)
            refined = image.resize((cell_w * cols, cell_h * rows))
            pieces += [refined.crop((c * cell_w, r * cell_h, (c + 1) * cell_w, (r + 1) * cell_h))
                       for r in range(rows) for c in range(cols)]
        return pieces

    def reshape_by_patch(self, image):  # (3, H, W) -> (3, P, H*W/P): the patches side by side
        p = self.patch_size
        patches = torch.nn.functional.unfold(image, (p, p), stride=(p, p))  # (3*P*P, n)
        return patches.reshape(3, p, p, -1).permute(0, 1, 3, 2).reshape(3, p, -1)

    def get_slice_image_placeholder(self, image_size, image_idx=0, max_slice_nums=None, use_image_id=None):
        q = self.unk * self.image_feature_size
        text = self.im_start + q + self.im_end
        if self.use_image_id if use_image_id is None else use_image_id:
            text = f"{self.im_id_start}{image_idx}{self.im_id_end}" + text
        grid = self.get_sliced_grid(image_size, max_slice_nums)
        if grid is not None:
            cols, rows = grid
            text += "\\n".join((self.slice_start + q + self.slice_end) * cols for _ in range(rows))
        return text

    def preprocess(self, images, do_pad=True, max_slice_nums=None, return_tensors=None, **kwargs):
        mean = np.array(self.norm_mean, dtype=np.float32)
        std = np.array(self.norm_std, dtype=np.float32)
        pixel_values, image_sizes, tgt_sizes = [], [], []
        for sample in images:
            slices, sizes, grids = [], [], []
            for image in sample:
                sizes.append(image.size)
                for piece in self.get_sliced_images(image, max_slice_nums):
                    array = (np.asarray(piece, dtype=np.float32) / 255.0 - mean) / std  # (H, W, 3)
                    tensor = torch.from_numpy(array.transpose(2, 0, 1).copy())
                    slices.append(self.reshape_by_patch(tensor))
                    grids.append([tensor.shape[1] // self.patch_size, tensor.shape[2] // self.patch_size])
            pixel_values.append(slices)
            image_sizes.append(sizes)
            tgt_sizes.append(torch.tensor(grids, dtype=torch.int32) if grids else [])
        return BatchFeature(data={"pixel_values": pixel_values, "image_sizes": image_sizes,
                                  "tgt_sizes": tgt_sizes})
'''

PROCESSING_PY = '''
import re

import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin


class MiniCPMVProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]
    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)
        self.version = image_processor.version

    def __call__(self, text, images=None, max_length=None, do_pad=True, max_slice_nums=None,
                 use_image_id=None, return_tensors="pt", **kwargs):
        image_inputs = self.image_processor(images, do_pad=do_pad, max_slice_nums=max_slice_nums)
        texts = [text] if isinstance(text, str) else text
        ids_list, bounds_list = [], []
        for index, one in enumerate(texts):
            chunks = one.split("(<image>./</image>)")
            final = chunks[0]
            for i, chunk in enumerate(chunks[1:]):
                final += self.image_processor.get_slice_image_placeholder(
                    image_inputs["image_sizes"][index][i], i, max_slice_nums, use_image_id) + chunk
            ids, bounds = self._convert(final, max_length)
            ids_list.append(ids)
            bounds_list.append(bounds)
        width = max(len(ids) for ids in ids_list)
        input_ids = torch.zeros((len(ids_list), width), dtype=torch.int32)
        attention_mask = torch.zeros((len(ids_list), width), dtype=torch.bool)
        for i, ids in enumerate(ids_list):  # left padding with 0
            input_ids[i, width - len(ids):] = ids
            attention_mask[i, width - len(ids):] = True
            bounds_list[i] = bounds_list[i] + (width - len(ids))
        return BatchFeature(data={"input_ids": input_ids, "attention_mask": attention_mask,
                                  "pixel_values": image_inputs["pixel_values"],
                                  "image_sizes": image_inputs["image_sizes"], "image_bound": bounds_list,
                                  "tgt_sizes": image_inputs["tgt_sizes"]})

    def _convert(self, text, max_length=None):
        ids = torch.tensor(self.tokenizer.encode(text)[:max_length], dtype=torch.int32)
        token = self.tokenizer.convert_tokens_to_ids
        ip = self.image_processor
        starts = torch.where((ids == token(ip.im_start)) | (ids == token(ip.slice_start)))[0] + 1
        ends = torch.where((ids == token(ip.im_end)) | (ids == token(ip.slice_end)))[0]
        return ids, torch.stack([starts, ends], dim=-1)
'''

# MiniCPM-V 2.6's chat template (Qwen2's ChatML, string contents).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MINICPM_TOKENS = ["<image>", "</image>", "<slice>", "</slice>", "<image_id>", "</image_id>"]
QUERY_NUM = 4


@pytest.fixture(scope="module")
def minicpmv_dir(tmp_path_factory):
    """A fake MiniCPM-V 2.6 checkpoint: config, weights, tokenizer and the model/processor code files."""
    from transformers import AutoConfig, AutoModel

    directory = tmp_path_factory.mktemp("minicpmv-fake")
    for name, code in [("configuration_minicpm.py", CONFIG_PY), ("modeling_minicpmv.py", MODELING_PY),
                       ("image_processing_minicpmv.py", IMAGE_PROCESSING_PY),
                       ("processing_minicpmv.py", PROCESSING_PY)]:
        (directory / name).write_text(code)
    tok = build_tiny_tokenizer(family="qwen2_vl")  # ChatML tokens, pad <|endoftext|> = id 0 as in Qwen2
    tok.add_special_tokens({"additional_special_tokens": MINICPM_TOKENS})
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(directory)
    (directory / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "MiniCPMVImageProcessor", "processor_class": "MiniCPMVProcessor",
        "auto_map": {"AutoImageProcessor": "image_processing_minicpmv.MiniCPMVImageProcessor",
                     "AutoProcessor": "processing_minicpmv.MiniCPMVProcessor"},
        "max_slice_nums": 3, "scale_resolution": 16, "patch_size": 4, "image_feature_size": QUERY_NUM,
        "version": 2.6,
    }))
    (directory / "config.json").write_text(json.dumps({
        "model_type": "minicpmv", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tok),
        "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, "bos_token_id": None,
        "query_num": QUERY_NUM, "patch_size": 4,
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                          "num_attention_heads": 2, "image_size": 32, "patch_size": 4},
        "auto_map": {"AutoConfig": "configuration_minicpm.MiniCPMVConfig",
                     "AutoModel": "modeling_minicpmv.MiniCPMV"},
    }))
    config = AutoConfig.from_pretrained(directory, trust_remote_code=True, local_files_only=True)
    torch.manual_seed(0)
    AutoModel.from_config(config, trust_remote_code=True).save_pretrained(directory)
    return directory


def _load(directory):
    return build_model(ModelConfig(name="hf", path=str(directory), trust_remote_code=True))


def _row(i, image=True, text="a caption", size=(16, 16)):
    png = encode_png(Image.new("RGB", size, (40 * i, 90, 200 - 30 * i))) if image else None
    return {"id": f"r{i}", "image": png, "text": text, "question": "Which digit is shown?", "choices": None,
            "answer": "seven", "label": None}


# image+text (1 slice), text only, a wide image (source + 3 slices), image only
ROWS = [_row(0), _row(1, image=False), _row(2, size=(48, 16)), _row(3, text=None)]


def test_the_shim_flattens_minicpmv_processor_output_for_the_collator(minicpmv_dir):
    built = _load(minicpmv_dir)
    assert isinstance(built.processor, MiniCPMVProcessorShim)
    prompt = built.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        add_generation_prompt=True, tokenize=False)
    assert "user\n(<image>./</image>)\nhi<|im_end|>" in prompt
    image = Image.new("RGB", (48, 16), (10, 20, 30))
    raw = built.processor.processor([prompt], [[image]], return_tensors="pt")
    out = built.processor(text=[prompt], images=[image], return_tensors="pt")
    assert torch.equal(image_spans(out["image_token_mask"][0]), raw["image_bound"][0].long())
    assert out["pixel_values"].shape[0] == len(raw["pixel_values"][0]) == 4  # source + 3 slices
    for padded, real in zip(out["pixel_values"], raw["pixel_values"][0]):
        assert torch.equal(padded[..., : real.shape[-1]], real) and not padded[..., real.shape[-1]:].any()
    assert torch.equal(out["tgt_sizes"], raw["tgt_sizes"][0].long())


def test_a_training_batch_gives_a_finite_loss_and_grads_only_on_lora_params(minicpmv_dir):
    built = _load(minicpmv_dir)
    assert type(built.model).__name__ == "MiniCPMV"
    model = apply_lora(built.model, LoraConfig(vision=True), "minicpmv")
    model.train()
    batch = Collator(built.processor, max_length=256).train_batch(ROWS)
    assert batch["pixel_values"].shape[0] == 1 + 4 + 1  # slices of rows 0, 2, 3 in row order
    loss = model(**batch).loss
    assert math.isfinite(loss.item())
    loss.backward()
    params = dict(model.named_parameters())
    with_grad = {n for n, p in params.items() if p.grad is not None}
    assert with_grad == {n for n, p in params.items() if p.requires_grad}
    assert with_grad and all("lora_" in n for n in with_grad)
    assert any(n.startswith("base_model.model.vpm.") for n in with_grad)
    # Same loss as the language model's own (labels passed through MiniCPM-V's forward(data) to llm).
    data = minicpmv_data(batch["input_ids"], batch["attention_mask"], batch["pixel_values"],
                         batch["tgt_sizes"], batch["image_token_mask"])
    own = model.get_base_model()(data=data, attention_mask=batch["attention_mask"], labels=batch["labels"])
    torch.testing.assert_close(own.loss, loss)


def test_generate_matches_minicpmv_own_generate_and_answers_one_string_per_row(minicpmv_dir):
    built = _load(minicpmv_dir)
    model = apply_lora(built.model, LoraConfig(), "minicpmv").eval()
    collator = Collator(built.processor, max_length=256)
    batch = collator.generation_batch(ROWS)
    tok = built.processor.tokenizer
    stop = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    with torch.no_grad():
        ours = model.generate(**batch, max_new_tokens=4, do_sample=False, pad_token_id=0, eos_token_id=stop)
    width = batch["input_ids"].shape[1]
    assert torch.equal(ours[:, :width], batch["input_ids"])  # prompt + new tokens, as evaluate.py slices
    # MiniCPM-V's own pipeline: its processor on the same prompts, its own generate (new tokens only).
    prompts = [built.processor.apply_chat_template([user_message(r)], add_generation_prompt=True,
                                                   tokenize=False) for r in ROWS]
    images = [[decode_image(r["image"])] if r["image"] else [] for r in ROWS]
    raw = built.processor.processor(prompts, images, return_tensors="pt")
    assert torch.equal(raw["input_ids"].long(), batch["input_ids"])
    theirs = model.generate(input_ids=raw["input_ids"].long(), pixel_values=raw["pixel_values"],
                            tgt_sizes=raw["tgt_sizes"], image_bound=raw["image_bound"],
                            attention_mask=raw["attention_mask"], tokenizer=tok, max_new_tokens=4,
                            do_sample=False)
    assert torch.equal(ours[:, width:], theirs)
    answers = generate_answers(model, collator, ROWS, batch_size=4, max_new_tokens=3)
    assert len(answers) == len(ROWS) and all(isinstance(a, str) for a in answers)


def test_option_scoring_agrees_with_the_training_loss(minicpmv_dir):
    built = _load(minicpmv_dir)
    model = apply_lora(built.model, LoraConfig(), "minicpmv")
    collator = Collator(built.processor, max_length=256)
    scores = option_logprobs(model, collator, ROWS[:3], [["seven", "two"]] * 3, batch_size=4)
    assert len(scores) == 3 and all(len(s) == 2 and all(math.isfinite(v) for v in s) for s in scores)
    batch = collator.train_batch(ROWS[2:3])  # answer "seven": mean token NLL = -logprob / answer tokens
    model.eval()
    with torch.no_grad():
        loss = model(**batch).loss
    num_tokens = int((batch["labels"] != -100).sum())
    expected = torch.tensor(-scores[2][0] / num_tokens, dtype=torch.float64)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-4, atol=1e-5)


def test_slices_without_placeholder_spans_are_a_clear_error():
    ids = torch.ones((1, 6), dtype=torch.long)
    with pytest.raises(ModelError, match="2 image slices but 0 image placeholder spans"):
        minicpmv_data(ids, None, torch.zeros((2, 3, 4, 16)), torch.ones((2, 2), dtype=torch.long), None)
