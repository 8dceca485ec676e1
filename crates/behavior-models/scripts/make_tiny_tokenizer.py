"""Writes tests/fixtures/llm/tiny-llama/tokenizer.json: a character-level tokenizer for the tiny
random Llama (vocab 96), so that the LLM pipelines (verbalised prompts, packed SFT, candidate
read-out) run end to end in tests and the `smoke` presets without a real model.

It is a Hugging Face `tokenizers` BPE model with single-character tokens and no merges (each
character is one token; characters outside the table map to <unk>), plus the ChatML specials
<|im_start|> and <|im_end|>. Only the standard library is needed:

    python3 crates/behavior-models/scripts/make_tiny_tokenizer.py
"""
import json
import os
import string

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "llm", "tiny-llama", "tokenizer.json")
VOCAB_SIZE = 96

specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
chars = list("\n ") + list(string.ascii_lowercase) + list(string.ascii_uppercase) + list(string.digits)
chars += list(":,.()-_#?'/&+")
vocab = {t: i for i, t in enumerate(specials + chars)}
assert len(vocab) <= VOCAB_SIZE, len(vocab)

tok = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [
        {"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for s in specials
    ],
    "normalizer": None,
    "pre_tokenizer": None,
    "post_processor": None,
    "decoder": {"type": "Fuse"},
    "model": {
        "type": "BPE",
        "dropout": None,
        "unk_token": "<unk>",
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
        "vocab": vocab,
        "merges": [],
    },
}
with open(OUT, "w") as f:
    json.dump(tok, f, ensure_ascii=False, indent=1)
print(f"wrote {OUT}: {len(vocab)} tokens")
