"""PyTorch side of `cargo bench -p behavior-benches --bench llm` (see benches/llm.rs).

Times, on the CPU with the given thread count, (1) a no-grad forward of a [batch, seq] batch and
(2) a LoRA SFT step (r=8, alpha=16 on q,k,v,o via peft; forward, backward, AdamW) with the loss on
the last seq-96 tokens, and (3) with --score-k K, closed-set scoring of K candidates after a
--score-prompt-token prompt with past_key_values repeated to each batch of candidates, on
SmolLM2-135M (the imported directory when given, else random weights of
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
    ap.add_argument("--score-k", type=int, default=0, help="also time scoring K candidates")
    ap.add_argument("--score-prompt", type=int, default=300, help="prompt tokens for scoring")
    ap.add_argument("--score-chunk", type=int, default=64, help="candidates per batch")
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

    if a.score_k > 0:
        # Closed-set scoring as transformers users do it: encode the prompt once, then run the
        # candidates as right-padded batches against past_key_values repeated to the batch.
        import copy
        model = load().eval()
        prompt = tokens(a.score_prompt, 0)
        cands = [tokens(2 + k % 5, 10 + k) for k in range(a.score_k)]

        def score():
            with torch.no_grad():
                out = model(input_ids=torch.tensor([prompt]), use_cache=True)
                first = out.logits[0, -1].log_softmax(-1)
                p = len(prompt)
                sums = []
                for s in range(0, len(cands), a.score_chunk):
                    g = cands[s:s + a.score_chunk]
                    k, m = len(g), max(len(c) for c in g) - 1
                    ids = torch.zeros(k, m, dtype=torch.long)
                    mask = torch.zeros(k, p + m, dtype=torch.long)
                    mask[:, :p] = 1
                    for r, c in enumerate(g):
                        ids[r, :len(c) - 1] = torch.tensor(c[:-1])
                        mask[r, p:p + len(c) - 1] = 1
                    past = copy.deepcopy(out.past_key_values)
                    past.batch_repeat_interleave(k)
                    pos = (p + torch.arange(m)).unsqueeze(0).expand(k, m)
                    lp = model(input_ids=ids, attention_mask=mask, past_key_values=past,
                               position_ids=pos).logits.log_softmax(-1)
                    for r, c in enumerate(g):
                        v = first[c[0]].item()
                        for t in range(1, len(c)):
                            v += lp[r, t - 1, c[t]].item()
                        sums.append(v)
                return sums

        secs = median_secs(3, score)
        print(f"score_seconds={secs:.4f}")
    print(f"torch_version={torch.__version__}")


if __name__ == "__main__":
    main()
