"""Checks that Python PEFT loads an adapter saved by our Rust `save_adapter` and reproduces our logits.

The Rust test `lora_training_moves_only_the_adapter_and_round_trips_in_peft_layout`
(tests/llm_golden.rs) trains a LoRA adapter on the tiny checkpoint; with BEHAVIOR_LLM_ADAPTER_OUT set
it also writes the adapter (adapter_config.json, adapter_model.safetensors) and the Rust logits
(rust_logits.safetensors) there. This script loads tiny-llama + that adapter with
`peft.PeftModel.from_pretrained` and compares logits.

    BEHAVIOR_LLM_ADAPTER_OUT=/tmp/adapter cargo test -p behavior-models --test llm_golden lora_training
    PYTHONPATH=/path/to/pyenv:/path/to/torch python3 crates/behavior-models/scripts/peft_load_check.py /tmp/adapter
"""

import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "tests", "fixtures", "llm")


def main():
    adapter = sys.argv[1]
    base = LlamaForCausalLM.from_pretrained(os.path.join(FIX, "tiny-llama"), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter).eval()
    g = load_file(os.path.join(FIX, "golden.safetensors"))
    ids, mask = g["input_ids"], g["attention_mask"]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    rust = load_file(os.path.join(adapter, "rust_logits.safetensors"))["logits"]
    m = mask.unsqueeze(-1).float()
    diff = ((logits - rust).abs() * m).max().item()
    base_diff = ((g["logits"] - rust).abs() * m).max().item()
    n_lora = sum(1 for n, _ in model.named_parameters() if "lora_" in n)
    print(f"PEFT loaded {n_lora} LoRA tensors; max |PEFT logits - Rust logits| = {diff:.3g} "
          f"(adapter moves logits by {base_diff:.3g} from the base model)")
    if not diff < 1e-4:
        sys.exit("MISMATCH")
    print("OK")


if __name__ == "__main__":
    main()
