"""Makes the tiny random Llama checkpoint and its PyTorch golden outputs for the LLM stack tests.

Writes crates/behavior-models/tests/fixtures/llm/tiny-llama/ (config.json, model.safetensors),
tiny-llama-lora/ (a PEFT adapter: adapter_config.json, adapter_model.safetensors) and golden.safetensors
+ golden.json (logits, LoRA logits, candidate log-likelihoods).

Rerun (from the repository root; needs torch, transformers, peft, safetensors):
    PYTHONPATH=/path/to/pyenv:/path/to/torch python3 crates/behavior-models/scripts/make_tiny_llama.py
Deterministic: torch.manual_seed(0). Tested with torch 2.11.0, transformers 4.57.1, peft 0.17.1.
"""

import json
import os

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "llm")


def main():
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # GQA: 2 query heads per kv head
        head_dim=8,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        # llama3 scaling with a short original context so every branch of the formula is exercised
        rope_scaling={
            "rope_type": "llama3",
            "factor": 4.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(cfg).eval()
    # random (not the default near-zero) norms so the golden test sees their effect
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    model_dir = os.path.join(OUT, "tiny-llama")
    model.save_pretrained(model_dir, safe_serialization=True)

    # --- golden 1: logits of a left-padded batch (positions from the mask, as HF generate does)
    ids = torch.tensor(
        [[1, 17, 45, 3, 88, 9, 60, 21], [0, 0, 0, 1, 33, 70, 5, 12]], dtype=torch.long
    )
    mask = torch.tensor([[1] * 8, [0, 0, 0, 1, 1, 1, 1, 1]], dtype=torch.long)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits

    # --- golden 2: candidate log-likelihoods for one prompt and K candidates (brute force)
    prompt = [1, 17, 45, 3, 88, 9]
    cands = [[60], [21, 22], [5, 6, 7], [90, 91, 92, 93], [60, 4]]
    sums = []
    with torch.no_grad():
        for c in cands:
            full = torch.tensor([prompt + c])
            lp = model(input_ids=full).logits.log_softmax(-1)[0]
            s = sum(lp[len(prompt) - 1 + t, c[t]].item() for t in range(len(c)))
            sums.append(s)

    # --- golden 3: LoRA forward (PEFT), B initialised randomly so the adapter changes the output
    lcfg = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lcfg).eval()
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.3 * torch.randn_like(p))
        lora_logits = peft_model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    peft_model.save_pretrained(os.path.join(OUT, "tiny-llama-lora"))
    os.remove(os.path.join(OUT, "tiny-llama-lora", "README.md"))  # PEFT boilerplate

    save_file(
        {
            "input_ids": ids,
            "attention_mask": mask,
            "logits": logits.contiguous(),
            "lora_logits": lora_logits.contiguous(),
        },
        os.path.join(OUT, "golden.safetensors"),
    )
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(
            {"prompt": prompt, "candidates": cands, "candidate_logprob_sums": sums},
            f,
            indent=1,
        )
    print("wrote", OUT, "sums", sums)


if __name__ == "__main__":
    main()
