"""Prepared samples: batches equal the collator's, bit for bit; the disk cache hits and misses as it must;
concurrent builders write each file once and never expose half of one."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from fedray.cache_files import CacheJob, ensure_files, map_batch
from fedray.client.evaluate import generate_answers
from fedray.client.prepared import PreparedStore, table_fingerprint
from fedray.client.scoring import option_logprobs
from fedray.config.schema import ModelConfig, PromptsConfig, TinyVlmConfig
from fedray.data.manifest import ClientSpec, train_needs
from fedray.data.modality import BOTH, IMAGE, NONE, TEXT, mask_rows
from fedray.data.prompts import build_prompt_style, format_choice
from fedray.data.sources import read_source
from fedray.errors import DataError
from fedray.models import build_model
from fedray.models.collate import Collator

MASKS = (BOTH, IMAGE, TEXT, NONE)


@pytest.fixture(scope="module")
def built():
    return build_model(ModelConfig(tiny=TinyVlmConfig(text_layers=1, vision_layers=1)))


@pytest.fixture(scope="module")
def glyphs() -> pa.Table:
    """Rows with an image, context text and lettered options (so every mask changes the prompt)."""
    return read_source("glyphs", {"max_per_class": 10}).splits["train"]  # 40 rows


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _reference(collator: Collator, table: pa.Table, positions, masks) -> list[dict]:
    return mask_rows(table.take(pa.array(positions)).to_pylist(), list(masks))


@pytest.mark.parametrize("max_length", [256, 150, 120])  # 150 cuts answers, 120 some prompts
def test_batches_equal_the_collators_for_every_mask(built, glyphs, tmp_path, max_length):
    collator = Collator(built.processor, max_length)
    store = PreparedStore(collator, tmp_path, shard_rows=8)
    store.add("train", glyphs, {BOTH: range(0, 20), IMAGE: range(10, 30)})  # the rest: built when asked
    rng = np.random.default_rng(0)
    for _ in range(6):
        positions = rng.choice(glyphs.num_rows, 6, replace=False)
        masks = rng.choice(MASKS, 6)
        samples = store.encodings("train", positions, masks)
        rows = _reference(collator, glyphs, positions, masks)
        try:
            expected = collator.train_batch(rows)
        except DataError:  # a prompt over max_length: the prepared batch must refuse it the same way
            with pytest.raises(DataError, match="prompt alone"):
                collator.stack_train([samples.encoded(i) for i in range(6)])
            continue
        assert _same(collator.stack_train([samples.encoded(i) for i in range(6)]), expected)
        assert _same(collator.stack_generation([samples.encoded(i) for i in range(6)]),
                     collator.generation_batch(rows))


class ExtrasProcessor:
    """The tiny processor plus what Qwen2-VL adds: a per-token tensor (only for rows with an image, so
    rows without one are padded with 0) and per-image metadata."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.tokenizer = inner.tokenizer
        self.chat_template = inner.chat_template
        self.image_token_id = inner.tokenizer.convert_tokens_to_ids("<image>")

    def apply_chat_template(self, *args, **kwargs):
        return self.inner.apply_chat_template(*args, **kwargs)

    def __call__(self, text, images=None, return_tensors="pt"):
        out = dict(self.inner(text=text, images=images, return_tensors=return_tensors))
        if images:
            out["mm_token_type_ids"] = (out["input_ids"] == self.image_token_id).long()  # (1, T)
            out["image_grid_thw"] = torch.tensor([[1, 2, 2]])  # (images, 3)
        return out


def test_per_token_and_per_image_extras_batch_as_the_collator_does(built, glyphs, tmp_path):
    collator = Collator(ExtrasProcessor(built.processor), 256)
    store = PreparedStore(collator, tmp_path)
    positions, masks = [0, 1, 2, 3, 4, 5], [BOTH, TEXT, IMAGE, NONE, BOTH, TEXT]
    store.add("train", glyphs)
    samples = store.encodings("train", positions, masks)
    batch = collator.stack_train([samples.encoded(i) for i in range(6)])
    assert {"mm_token_type_ids", "image_grid_thw"} <= set(batch)
    assert int(batch["mm_token_type_ids"][1].sum()) == 0  # a row without an image: all 0
    assert _same(batch, collator.train_batch(_reference(collator, glyphs, positions, masks)))


def test_a_real_qwen2_vl_processor_batches_the_same(glyphs, tmp_path):
    from transformers import Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from fedray.models.hf import without_video
    from fedray.models.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(family="qwen2_vl")
    images = Qwen2VLImageProcessorPil(patch_size=4, merge_size=2, temporal_patch_size=2,
                                      min_pixels=16 * 16, max_pixels=32 * 32)
    processor = without_video(Qwen2VLProcessor)(image_processor=images, tokenizer=tokenizer,
                                                chat_template=tokenizer.chat_template)
    collator = Collator(processor, 256)
    store = PreparedStore(collator, tmp_path)
    store.add("train", glyphs)
    positions, masks = [0, 7, 3, 9], [BOTH, TEXT, IMAGE, BOTH]
    samples = store.encodings("train", positions, masks)
    batch = collator.stack_train([samples.encoded(i) for i in range(4)])
    assert {"mm_token_type_ids", "image_grid_thw", "pixel_values"} <= set(batch)
    assert _same(batch, collator.train_batch(_reference(collator, glyphs, positions, masks)))


def test_a_second_store_maps_what_the_first_built_and_a_changed_input_misses(built, glyphs, tmp_path):
    needs = {BOTH: range(0, 12)}

    def prepare(collator: Collator, table: pa.Table = glyphs) -> PreparedStore:
        store = PreparedStore(collator, tmp_path, shard_rows=8)
        store.add("train", table, needs)
        return store

    first = prepare(Collator(built.processor, 256))
    assert len(first.built) == 2 and len(first.mapped) == 2
    again = prepare(Collator(built.processor, 256, prompt=build_prompt_style(PromptsConfig())))
    assert again.built == [] and again.mapped == first.mapped  # a second run skips the work
    agnostic = build_prompt_style(PromptsConfig(), agnostic=True)
    fedmllm = build_prompt_style(PromptsConfig(style="fedmllm"))
    for changed in (Collator(built.processor, 256, prompt=agnostic), Collator(built.processor, 200),
                    Collator(built.processor, 256, prompt=fedmllm)):
        store = prepare(changed)
        assert len(store.built) == 2 and not set(store.mapped) & set(first.mapped)
    edited = glyphs.set_column(glyphs.schema.get_field_index("question"), "question",
                               pa.array(["Which script is this?"] * glyphs.num_rows))
    assert table_fingerprint(edited) != table_fingerprint(glyphs)
    assert len(prepare(Collator(built.processor, 256), edited).built) == 2


def test_eval_generation_and_scoring_read_prepared_prompts(built, glyphs, tmp_path):
    from fedray.config.schema import LoraConfig
    from fedray.models.lora import apply_lora

    collator = Collator(built.processor, 256)
    store = PreparedStore(collator, tmp_path)
    store.add("eval-test", glyphs)
    positions = list(range(5))
    samples = store.encodings("eval-test", positions, [TEXT] * 5)
    rows = _reference(collator, glyphs, positions, [TEXT] * 5)
    model = apply_lora(build_model(ModelConfig(tiny=TinyVlmConfig(text_layers=1, vision_layers=1))).model,
                       LoraConfig(rank=2))
    assert generate_answers(model, collator, samples, 2, 3) == generate_answers(model, collator, rows, 2, 3)
    options = [[format_choice(i, c) for i, c in enumerate(r["choices"])] for r in rows]
    assert option_logprobs(model, collator, samples, options, 3) == \
        option_logprobs(model, collator, rows, options, 3)
    assert store.answer_lengths("eval-test") == [collator.answer_length(r) for r in glyphs.to_pylist()]


def test_train_needs_collects_positions_per_mask_and_rows_out_of_range_are_refused(built, glyphs, tmp_path):
    specs = [ClientSpec(0, (4, 1), "t"), ClientSpec(1, (2, 3), "t", masks=(IMAGE, BOTH))]
    assert train_needs(specs) == {IMAGE: [2], BOTH: [1, 3, 4]}
    store = PreparedStore(Collator(built.processor, 256), tmp_path)
    with pytest.raises(DataError, match="40 rows"):
        store.add("train", glyphs, {BOTH: [39, 40]})


# -- concurrent builders --------------------------------------------------------------------------------
def _build_all(root: str, log: str) -> None:
    def job(i: int) -> CacheJob:
        def build() -> pa.RecordBatch:
            with open(log, "a") as f:  # one line per build, from whichever process built it
                f.write(f"{i}\n")
            return pa.record_batch([pa.array(np.full(50_000, i))], names=["v"])
        return CacheJob(Path(root) / f"unit-{i}.arrow", build)

    ensure_files([job(i) for i in range(6)])


def test_concurrent_builders_write_each_file_once(tmp_path):
    log = tmp_path / "builds.log"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_build_all, args=(str(tmp_path), str(log))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sorted(int(x) for x in log.read_text().split()) == list(range(6))
    for i in range(6):
        assert map_batch(tmp_path / f"unit-{i}.arrow").column("v").to_numpy()[-1] == i
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
