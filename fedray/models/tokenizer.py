"""A deterministic byte-level BPE tokenizer that needs no download.

The merges are learned from a fixed built-in corpus, so every process (driver, each actor, a test)
builds the identical vocabulary. Byte-level pre-tokenization means any text is encodable, including
words the corpus never saw.

:data:`CHAT_FORMATS` holds, per model family, the special tokens and a chat template written in the format
of that family's released checkpoints (Qwen2-VL's ``<|im_start|>`` turns, Idefics3's ``User:``/``Assistant:``
turns), so tests and offline demos can build a tiny model of any family whose processor behaves like the
real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from fedray.registry import Registry

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "<image>")

# Words the built-in tasks and prompt templates use, so that they become single tokens; everything
# else still tokenizes through the byte fallback.
_CORPUS_WORDS = """
zero one two three four five six seven eight nine ten
USER ASSISTANT Which digit is shown? What is shown in the image? Answer with one word.
question answer image text context options choose the correct option from the list below
the a an of and to in is that it for on with as was by at from this be are or not yes no
what which who where when why how many much color shape size number left right top bottom
picture photo shows there one word label class category animal object person people place
true false hateful informative damage medical organ abnormal normal present absent
""".split()


def _corpus() -> list[str]:
    # Repetition weights the corpus words above byte pairs in arbitrary prose, so each gets merged
    # into a whole token; the leading-space variants match how words appear mid-sentence.
    lines = []
    for _ in range(20):
        lines.append(" ".join(_CORPUS_WORDS))
        lines.append(" ".join(reversed(_CORPUS_WORDS)))
    return lines


CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>{{ '\\n' }}{% else %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{{ '\\n' }}"
    "{% else %}ASSISTANT: "
    "{% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>{{ '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass(frozen=True)
class ChatFormat:
    """What a family's tokenizer carries beyond the BPE merges: its special tokens and chat template."""

    special_tokens: tuple[str, ...]  # whole tokens at the start of the vocabulary (ids 0, 1, ...)
    pad: str
    eos: str
    bos: str | None
    chat_template: str
    # Named tokens the family's processor reads from the tokenizer (e.g. {"image_token": "<image>"}).
    extra_special_tokens: dict[str, str] = field(default_factory=dict)


CHAT_FORMATS: Registry[ChatFormat] = Registry("tiny tokenizer chat format")

CHAT_FORMATS.register("llava")(ChatFormat(
    special_tokens=SPECIAL_TOKENS, pad="<pad>", eos="</s>", bos="<s>", chat_template=CHAT_TEMPLATE,
    extra_special_tokens={"image_token": "<image>"},
))

# Qwen2-VL / Qwen2.5-VL: ChatML turns with a default system turn; an image is a vision-start/pad/end triple
# that the processor widens to one <|image_pad|> per merged patch.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHAT_FORMATS.register("qwen2_vl")(ChatFormat(
    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "<|vision_start|>",
                    "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"),
    pad="<|endoftext|>", eos="<|im_end|>", bos=None, chat_template=QWEN2_VL_CHAT_TEMPLATE,
))

# Idefics3 / SmolVLM: "User:<image>question<end_of_utterance>\nAssistant: answer<end_of_utterance>\n"; the
# processor expands <image> into <fake_token_around_image><global-img><image>*N (plus <row_i_col_j> crops).
IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'text' %}{{ item['text'] }}{% elif item['type'] == 'image' %}<image>{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
CHAT_FORMATS.register("idefics3")(ChatFormat(
    special_tokens=("<pad>", "<|im_start|>", "<end_of_utterance>", "<unk>", "<fake_token_around_image>",
                    "<image>", "<global-img>",
                    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))),
    pad="<pad>", eos="<end_of_utterance>", bos="<|im_start|>", chat_template=IDEFICS3_CHAT_TEMPLATE,
))


@lru_cache(maxsize=8)
def _trained_tokenizer_json(vocab_size: int, special_tokens: tuple[str, ...] = SPECIAL_TOKENS) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok.to_str()


def build_tiny_tokenizer(vocab_size: int = 1024, family: str = "llava"):
    """A ``PreTrainedTokenizerFast`` with the special tokens and chat template of ``family``.

    The default (``llava``) has pad/bos/eos/unk and an ``<image>`` token and is what ``tiny-vlm`` uses.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    fmt = CHAT_FORMATS.get(family)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_tokenizer_json(vocab_size, fmt.special_tokens)),
        pad_token=fmt.pad,
        bos_token=fmt.bos,
        eos_token=fmt.eos,
        unk_token="<unk>",
        extra_special_tokens=dict(fmt.extra_special_tokens),
        model_max_length=4096,
    )
    tokenizer.chat_template = fmt.chat_template
    return tokenizer
