"""PyTorch side of `cargo bench -p behavior-benches --bench llm` (see benches/llm.rs).

Times, on the CPU with the given thread count, (1) a no-grad forward of a [batch, seq] batch and
(2) a LoRA SFT step (r=8, alpha=16 on q,k,v,o via peft; forward, backward, AdamW) with the loss on
the last seq-96 tokens, on SmolLM2-135M (the imported directory when given, else random weights of
the same shape), with the same token ids as the Rust side. Prints key=value lines.

    PYTHONPATH=/path/to/pyenv:/path/to/torch python3 benches/llm_torch_reference.py --threads 2 \
        [--model-dir ~/.cache/behavior-lab/smollm2-135m-instruct]
"""

import argparse
import statistics
import time

import torch


def tokens(n, seed):
    return [100 + (i * 7919 + seed * 104729) % 40000 for i in range(n)]


def median_secs(n, f):
    f()
    ts = []
    for _ in range(n):
        s = time.perf_counter()
        f()
        ts.append(time.perf_counter() - s)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--model-dir")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import LoraConfig, get_peft_model

    def load():
        if a.model_dir:
            return LlamaForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)
        cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                          num_attention_heads=9, num_key_value_heads=3, head_dim=64, rope_theta=100000.0,
                          rms_norm_eps=1e-5, max_position_embeddings=8192, tie_word_embeddings=True)
        torch.manual_seed(0)
        return LlamaForCausalLM(cfg)

    toks = a.batch * a.seq
    ids = torch.tensor(tokens(toks, 1)).view(a.batch, a.seq)
    model = load().eval()
    with torch.no_grad():
        fwd = median_secs(3, lambda: model(input_ids=ids))
    print(f"forward_tokens_per_s={toks / fwd:.1f}")

    model = load()
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                             task_type="CAUSAL_LM"))
    model.train()
    rows = [tokens(a.seq, b + 3) for b in range(a.batch)]
    ids = torch.tensor(rows)
    labels = ids.clone()
    labels[:, :96] = -100
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    train = median_secs(3, step)
    print(f"lora_train_tokens_per_s={toks / train:.1f}")
    print(f"torch_version={torch.__version__}")


if __name__ == "__main__":
    main()
