"""A deterministic byte-level BPE tokenizer that needs no download.

The merges are learned from a fixed built-in corpus, so every process (driver, each actor, a test)
builds the identical vocabulary. Byte-level pre-tokenization means any text is encodable, including
words the corpus never saw.
"""

from __future__ import annotations

from functools import lru_cache

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


@lru_cache(maxsize=4)
def _trained_tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok.to_str()


def build_tiny_tokenizer(vocab_size: int = 1024):
    """A ``PreTrainedTokenizerFast`` with pad/bos/eos/unk and an ``<image>`` special token."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_tokenizer_json(vocab_size)),
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
