"""A small Qwen2-style tokenizer trained locally: byte-level BPE with Qwen2's exact normalizer and pre-tokenizer,
the real Qwen2.5-VL special tokens, and the Qwen2-VL chat template.

It is saved as a ``Qwen2Tokenizer`` — the class real Qwen2.5-VL checkpoints name — so loading it takes the same
code path as a hub model. ``<think>``/``</think>``/``<answer>``/``</answer>`` are added tokens that are NOT special:
evaluation decodes with ``skip_special_tokens=True`` and must still see them (as with Qwen's own ``<tool_call>``).
"""

from __future__ import annotations

import json

import numpy as np

# Qwen2.5-VL's special tokens, in the order of their ids there (151643...).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)
REASONING_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
DEFAULT_SYSTEM = "You are a helpful assistant."

# Qwen2-VL's template: content is a string or a list of {"type": "text" | "image" | "video"} parts (any role,
# system included); a default system turn is added when the conversation has none.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus(seed: int = 0) -> list[str]:
    """Training text: the synthetic benchmark's prompts and targets (repeated, so its words become single
    tokens), the eval instructions, and some general English so free-form prompts still tokenize reasonably."""
    from reasonkit import prompts
    from reasonkit.synth.benchmark import qa_record, sft_row
    from reasonkit.synth.scenes import N_VALUES, TASKS

    rng = np.random.default_rng([seed, 99])
    texts = [DEFAULT_SYSTEM, prompts.SYSTEM_PROMPT, "system user assistant"]
    for task, make in TASKS.items():
        for k in range(60):
            scene = make(rng, k % N_VALUES[task])
            qa = qa_record(scene, int(rng.integers(0, len(scene.values))), rng)
            for turn in sft_row("v.mp4", qa, scene, "synthphys")["conversations"]:
                text = turn["content"]
                for tag in REASONING_TOKENS:  # added tokens are matched before BPE runs: no merges for them
                    text = text.replace(tag, " ")
                texts.append(text)
    texts += [str(i) for i in range(1000)]
    try:  # ~450 KB of English prose and code shipped with CPython
        from pydoc_data.topics import topics

        texts += [line for key in sorted(topics) for line in topics[key].splitlines() if line.strip()]
    except ImportError:  # pragma: no cover - stripped Python builds
        pass
    return texts


def build_tokenizer(vocab_size: int = 4096, seed: int = 0):
    """Train the BPE and wrap it as a ``transformers.Qwen2Tokenizer`` (eos ``<|im_end|>``, pad ``<|endoftext|>``)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(BPE())
    bpe.normalizer = normalizers.NFC()  # the same pipeline Qwen2Tokenizer rebuilds around vocab + merges
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL_TOKENS) - len(REASONING_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus(seed), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]

    # Specials get ids after the BPE vocabulary, in Qwen's order (<|endoftext|> first, as eos at construction).
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=32768)
    tok.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TOKENS])
    tok.eos_token = "<|im_end|>"
    tok.chat_template = CHAT_TEMPLATE
    return tok
